package config_test

import (
	"fmt"
	"time"

	"github.com/spoolmq/spool/bytesize"
	"github.com/spoolmq/spool/internal/config"
)

type exampleConfig struct {
	DataDir string `yaml:"data-dir"`
	Kafka   struct {
		Listener   string        `yaml:"listener"`
		Advertised []string      `yaml:"advertised"`
		MaxRequest bytesize.Size `yaml:"max-request-size"`
	} `yaml:"kafka"`
	Log struct {
		Retention time.Duration `yaml:"retention"`
	} `yaml:"log"`
}

func ExampleLoad() {
	var cfg exampleConfig
	cfg.DataDir = "/var/lib/spool" // defaults first
	cfg.Kafka.Listener = ":9092"
	cfg.Log.Retention = 7 * 24 * time.Hour

	file := []byte(`
kafka:
  advertised: [broker-1.example:9092]
  max-request-size: 64MiB
log:
  retention: 72h
`)
	if err := config.Load("spool.yml", file, &cfg); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.DataDir, cfg.Kafka.Listener, cfg.Kafka.Advertised, cfg.Kafka.MaxRequest, cfg.Log.Retention)

	bad := []byte(`
kafka:
  listen: ":9093"
  max-request-size: 64M
log:
  retention: 30
`)
	fmt.Println(config.Load("spool.yml", bad, &cfg))
	// Output:
	// /var/lib/spool :9092 [broker-1.example:9092] 64MiB 72h0m0s
	// spool.yml:3:3: kafka.listen: unknown key (did you mean "kafka.listener"?)
	// spool.yml:4:21: kafka.max-request-size: invalid size "64M": unknown unit "M" (want B, KB, MB, GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB or EiB)
	// spool.yml:6:14: log.retention: bare number 30 is not a duration: add a unit, such as "30s"
}

func ExampleApplyEnv() {
	var cfg exampleConfig
	environ := []string{"SPOOL_KAFKA_LISTENER=:19092", "SPOOL_LOG_RETENTION=1h", "SPOOL_KAFKA_LISTNER=x"}
	fmt.Println(config.ApplyEnv("SPOOL", environ, &cfg))
	fmt.Println(config.ApplyEnv("SPOOL", environ[:2], &cfg), cfg.Kafka.Listener, cfg.Log.Retention)
	// Output:
	// config: unknown environment variable SPOOL_KAFKA_LISTNER (did you mean SPOOL_KAFKA_LISTENER?)
	// <nil> :19092 1h0m0s
}

func ExampleMarshal() {
	var cfg exampleConfig
	cfg.DataDir = "/var/lib/spool"
	cfg.Kafka.MaxRequest = 100 * bytesize.MiB
	cfg.Log.Retention = 90 * time.Minute
	out, err := config.Marshal(&cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(out))
	// Output:
	// data-dir: /var/lib/spool
	// kafka:
	//   listener: ""
	//   advertised: []
	//   max-request-size: 100MiB
	// log:
	//   retention: 1h30m0s
}

func ExampleKeys() {
	for _, k := range config.Keys(exampleConfig{}) {
		fmt.Println(k)
	}
	// Output:
	// data-dir string
	// kafka.listener string
	// kafka.advertised []string
	// kafka.max-request-size bytesize.Size
	// log.retention time.Duration
}
