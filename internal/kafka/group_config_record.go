package kafka

// Group configs in the front end's space of the state store
// (docs/format/state.md): key "gcfg/<group>" (below the space's prefix
// "kafka-"), written synced; a group without configs has no record.
//
// Version 1: 01 ‖ a JSON object of the configs set, name to string value,
// e.g. {"share.auto.offset.reset":"earliest","share.record.lock.duration.ms":"60000"}.
// Version 0 (up to release 7e44b4f): the same object without the version
// byte.

import (
	"encoding/json"
	"fmt"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

const groupConfigVersion = 1

func groupConfigKey(group string) []byte { return append([]byte("gcfg/"), group...) }

// encodeGroupConfigs encodes a group's configs as version 1.
func encodeGroupConfigs(cfg map[string]string) ([]byte, error) {
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return append([]byte{groupConfigVersion}, data...), nil
}

// decodeGroupConfigs decodes version 0 or 1.
func decodeGroupConfigs(v []byte) (map[string]string, error) {
	_, p, err := state.Version(v, groupConfigVersion, true)
	if err != nil {
		return nil, err
	}
	cfg := map[string]string{}
	if err := state.DecodeJSON(p, &cfg, false); err != nil {
		return nil, err
	}
	if len(cfg) == 0 {
		return nil, fmt.Errorf("no configs (a group without configs has no record)")
	}
	return cfg, nil
}

// loadGroupConfigs returns the configs set on a group. A record this
// server cannot read is CorruptData, naming its key.
func (s *Server) loadGroupConfigs(group string) (map[string]string, error) {
	key := groupConfigKey(group)
	v, ok, err := s.space.Get(key)
	if err != nil || !ok {
		return map[string]string{}, err
	}
	cfg, err := decodeGroupConfigs(v)
	if err != nil {
		rerr := &state.RecordError{Kind: "Kafka group configs", Key: s.space.Key(key), Err: err}
		return nil, errs.Wrap(errs.CorruptData, rerr, "configs of group %q", group)
	}
	return cfg, nil
}

// storeGroupConfigs stores a group's configs, durably; none deletes the
// record. Called with gcfgMu held.
func (s *Server) storeGroupConfigs(group string, cfg map[string]string) error {
	rec := broker.Record{Key: groupConfigKey(group)}
	if len(cfg) > 0 {
		v, err := encodeGroupConfigs(cfg)
		if err != nil {
			return errs.Wrap(errs.Internal, err, "encode configs of group %q", group)
		}
		rec.Value = v
	}
	return s.space.Write([]broker.Record{rec}, true)
}

// deleteGroupConfigs deletes a group's configs (DeleteGroups) and reports
// whether it had any.
func (s *Server) deleteGroupConfigs(group string) (bool, error) {
	s.gcfgMu.Lock()
	defer s.gcfgMu.Unlock()
	_, ok, err := s.space.Get(groupConfigKey(group))
	if err != nil || !ok {
		return false, err
	}
	return true, s.storeGroupConfigs(group, nil)
}
