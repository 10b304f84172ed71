// Package config loads Spool's configuration: YAML files and environment
// variables decoded strictly into ordinary Go structs.
//
// A config struct names its keys with yaml tags; nested structs are
// sections. A field with no yaml tag has its Go name lower-cased as its
// key, a field tagged "-" and unexported fields are skipped, and tag
// options such as omitempty are ignored (inline is refused).
//
//	type Config struct {
//		DataDir    string   `yaml:"data-dir"`
//		Durability SyncMode `yaml:"durability"` // UnmarshalText reads always, interval or none
//		HTTP       struct {
//			Addr        string        `yaml:"addr"`
//			ReadTimeout time.Duration `yaml:"read-timeout"`
//		} `yaml:"http"`
//		Log struct {
//			SegmentSize bytesize.Size   `yaml:"segment-size"`
//			Peers       []string        `yaml:"peers"`
//		} `yaml:"log"`
//	}
//
// Supported field types are strings, bools, all integer kinds but uintptr,
// float32 and float64, time.Duration (written "30s", "1h30m"; a bare number
// is an error), bytesize.Size (1048576 or "64MiB"), slices of a string kind,
// nested structs, and any type whose pointer implements
// encoding.TextUnmarshaler, which is given the text of a scalar value.
// Types defined from string, bool, integer and float kinds work too, but
// one defined from time.Duration is read as a plain integer, so use
// time.Duration itself. Anything else (pointers, maps, interfaces, other
// slices) makes Load, ApplyEnv and Marshal fail and Keys panic.
//
// The usual sequence, for the spool serve command:
//
//	cfg := defaultConfig() // the defaults, filled in by the caller
//	data, err := os.ReadFile(path)
//	if err != nil {
//		return err
//	}
//	if err := config.Load(path, data, &cfg); err != nil {
//		return err // every problem, one per line: "spool.yml:12:3: kafka.listen: unknown key ..."
//	}
//	if err := config.ApplyEnv("SPOOL", os.Environ(), &cfg); err != nil {
//		return err
//	}
//	out, err := config.Marshal(&cfg) // for --print-config
//
// Load and ApplyEnv report problems of the input as an *Errors listing
// each *Error with its location, and change nothing unless there are
// none. Problems of the Go side, such as an unsupported field type, are
// plain errors beginning "config: ". The functions may be called
// concurrently, on different targets.
package config
