package broker

import (
	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/errs"
)

// AppendBatch validates and queues one record batch of the native API's
// batch form for partition p of a topic: a batch the client built, stored
// as sent (offsets assigned, partition leader epoch 0) so that nothing is
// decoded into messages and encoded again. It is AppendRaw with the rules
// a publish applies to messages instead of Kafka's:
//
//   - no record larger than the topic's max message bytes, counted as the
//     per-message form counts a message (key, value, subject, user
//     headers; not the names of Spool's headers, nor deliver-at and ttl);
//     subjects at most MaxIDLen bytes;
//   - no record carrying an id (spool.id): the de-duplication window
//     applies to messages with ids, which go by the per-message form
//     (Publish), so a batch could not bypass it;
//   - the topic's discard=new bounds (topic_full); discard=old topics drop
//     their oldest segments as for every publish;
//   - with brokerTime, the records' timestamps are the broker's time of
//     acceptance, as for messages published without one: the batch must
//     carry base and max timestamp 0 (every record's delta 0 is checked
//     by the log's validation), its CRC is checked, then both timestamps
//     are set to now and the CRC recomputed.
//
// The batch is then validated by the log as every append is (CRC, lengths,
// counts, offsets, attributes, timestamps; batch.Validate). Errors:
// topic_not_found, invalid_argument (no such partition, more than one
// batch, a control batch, an id, a malformed batch: wrapping its
// *batch.ValidationError), message_too_large, topic_full. With flush the
// caller writes the batch itself when no flush is in progress
// (seglog.Log.SubmitFlush). Every successful call must be followed by Wait.
func (b *Broker) AppendBatch(topicName string, p int32, one []byte, brokerTime, flush bool) (*PendingAppend, error) {
	return b.appendClientBatches(topicName, p, one, flush, func(t *topic) (int, error) {
		return b.checkBatch(t, topicName, p, one, brokerTime)
	})
}

// checkBatch applies the batch form's rules (AppendBatch) to one batch and
// returns its record count.
func (b *Broker) checkBatch(t *topic, topicName string, p int32, one []byte, brokerTime bool) (int, error) {
	bt, err := batch.Parse(one)
	if err != nil {
		return 0, errs.Wrap(errs.InvalidArgument, err, "record batch for %s/%d", topicName, p)
	}
	if len(bt.Bytes) != len(one) {
		return 0, errs.New(errs.InvalidArgument, "one record batch per partition")
	}
	h := bt.Header
	if h.IsControl() {
		return 0, errs.New(errs.InvalidArgument, "clients may not produce control batches")
	}
	lim := b.cfg.Log.Limits
	if brokerTime {
		hl := lim
		hl.CheckRecords = false
		if _, err := batch.Validate(one, hl); err != nil {
			return 0, errs.Wrap(errs.InvalidArgument, err, "invalid batch for %s/%d", topicName, p)
		}
		if h.BaseTimestamp != 0 || h.MaxTimestamp != 0 || h.HasLogAppendTime() {
			return 0, errs.New(errs.InvalidArgument, "a batch in the broker's time carries timestamps 0 (base %d, max %d)", h.BaseTimestamp, h.MaxTimestamp)
		}
		now := b.clock.Now().UnixMilli()
		batch.SetTimestamps(one, now, now)
	}
	batch.SetPartitionLeaderEpoch(one, 0)
	cfg := t.meta.Config
	i := 0
	for r, err := range bt.Records(lim.MaxDecompressedBytes) {
		if err != nil {
			return 0, errs.Wrap(errs.InvalidArgument, err, "invalid batch for %s/%d", topicName, p)
		}
		size := len(r.Key) + len(r.Value)
		for _, hd := range r.Headers {
			switch hd.Key {
			case HeaderID:
				return 0, errs.New(errs.InvalidArgument, "record %d carries an id: messages with ids are published one by one (the messages form), where the de-duplication window applies", i)
			case HeaderSubject:
				if len(hd.Value) > MaxIDLen {
					return 0, errs.New(errs.InvalidArgument, "record %d: subjects are limited to %d bytes", i, MaxIDLen)
				}
				size += len(hd.Value)
			case HeaderDeliverAt, HeaderTTL:
			default:
				size += len(hd.Key) + len(hd.Value)
			}
		}
		if size > int(cfg.MaxMessageBytes) {
			return 0, errs.New(errs.MessageTooLarge, "message %d is %d bytes; topic %q accepts at most %d", i, size, topicName, cfg.MaxMessageBytes)
		}
		i++
	}
	return int(h.NumRecords), nil
}
