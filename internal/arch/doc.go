// Package arch holds no code: its tests check the architecture of the
// module as written down in DESIGN.md — which package may import which.
package arch
