package kafka

// fetchSessionCache holds incremental fetch sessions (KIP-227).
type fetchSessionCache struct{}
