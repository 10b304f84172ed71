package config

import (
	"fmt"
	"time"

	"github.com/spoolmq/spool/bytesize"
)

// Size units, for the tests' sizes.
const (
	KiB = bytesize.KiB
	MiB = bytesize.MiB
	GiB = bytesize.GiB
)

// syncMode stands in for a Spool enum read with UnmarshalText.
type syncMode int

const (
	syncAlways syncMode = iota
	syncInterval
	syncNone
)

var syncModeNames = []string{"always", "interval", "none"}

func (m syncMode) String() string {
	if int(m) < len(syncModeNames) {
		return syncModeNames[m]
	}
	return fmt.Sprintf("syncMode(%d)", int(m))
}

func (m *syncMode) UnmarshalText(text []byte) error {
	for i, n := range syncModeNames {
		if string(text) == n {
			*m = syncMode(i)
			return nil
		}
	}
	return fmt.Errorf("want always, interval or none")
}

// level is a string-kind enum with both text methods.
type level string

func (l level) MarshalText() ([]byte, error) { return []byte(l), nil }

func (l *level) UnmarshalText(text []byte) error {
	switch string(text) {
	case "debug", "info", "warn", "error":
		*l = level(text)
		return nil
	}
	return fmt.Errorf("want debug, info, warn or error")
}

type httpSection struct {
	Addr         string        `yaml:"addr"`
	Enabled      bool          `yaml:"enabled"`
	ReadTimeout  time.Duration `yaml:"read-timeout"`
	MaxBodyBytes bytesize.Size `yaml:"max-body"`
}

type kafkaSection struct {
	Listener   string        `yaml:"listener"`
	Advertised []string      `yaml:"advertised"`
	MaxRequest bytesize.Size `yaml:"max-request-size"`
}

type logSection struct {
	SegmentSize bytesize.Size `yaml:"segment-size"`
	Retention   time.Duration `yaml:"retention"`
	Durability  syncMode      `yaml:"durability"`
	Level       level         `yaml:"level"`
}

type limitsSection struct {
	I    int     `yaml:"i"`
	I8   int8    `yaml:"i8"`
	I16  int16   `yaml:"i16"`
	I32  int32   `yaml:"i32"`
	I64  int64   `yaml:"i64"`
	U    uint    `yaml:"u"`
	U8   uint8   `yaml:"u8"`
	U16  uint16  `yaml:"u16"`
	U32  uint32  `yaml:"u32"`
	U64  uint64  `yaml:"u64"`
	F64  float64 `yaml:"f64"`
	F32  float32 `yaml:"f32"`
	Deep struct {
		Name string `yaml:"name"`
	} `yaml:"deep"`
}

// testConfig is a sample config shaped like Spool's, with every kind of
// field.
type testConfig struct {
	DataDir string        `yaml:"data-dir"`
	HTTP    httpSection   `yaml:"http"`
	Kafka   kafkaSection  `yaml:"kafka"`
	Log     logSection    `yaml:"log"`
	Limits  limitsSection `yaml:"limits"`
	Nodes   []string      // untagged: key "nodes"
	Ignored string        `yaml:"-"`
	private string
}

// defaults returns a testConfig filled as a caller would before Load.
func defaults() testConfig {
	var c testConfig
	c.DataDir = "/var/lib/spool"
	c.HTTP = httpSection{Addr: ":8080", Enabled: true, ReadTimeout: 30 * time.Second, MaxBodyBytes: 4 * MiB}
	c.Kafka = kafkaSection{Listener: ":9092", MaxRequest: 100 * MiB}
	c.Log = logSection{SegmentSize: GiB, Retention: 7 * 24 * time.Hour, Durability: syncAlways, Level: "info"}
	return c
}
