package kafka

// Versions returns the server's table of API keys and their [min, max]
// versions.
func Versions() map[int16][2]int16 {
	s := New(nil, Config{})
	out := make(map[int16][2]int16, len(s.apis))
	for k, a := range s.apis {
		out[k] = [2]int16{a.min, a.max}
	}
	return out
}
