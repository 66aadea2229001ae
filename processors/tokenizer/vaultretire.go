package tokenizer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/state"
	"github.com/pcistream/pcistream/schemas"
)

// RetiredAlgorithm marks the vault record that says a key version was
// retired (VAULT.md): keyed by the version's token prefix "tok_v<N>_",
// which no token equals, so it survives compaction next to the tombstones
// of the version's entries.
const RetiredAlgorithm = "retired"

// RetiredError is returned for a token whose key version was retired: its
// vault entry was deleted on purpose and the PAN cannot be revealed.
type RetiredError struct {
	Version uint32
	At      time.Time
}

func (e *RetiredError) Error() string {
	return fmt.Sprintf("key version %d was retired on %s: its vault entries were deleted (pcistream keys retire) and this token can no longer be detokenized",
		e.Version, e.At.UTC().Format(time.RFC3339))
}

// Retired reports whether version was retired, from the index (caught up).
func (v *VaultIndex) Retired(ctx context.Context, serde *schemas.Serde, version uint32) (*RetiredError, error) {
	key := versionPrefix(version)
	part := v.Partition(string(key))
	if _, err := v.CatchUp(ctx, part); err != nil {
		return nil, fmt.Errorf("catching up the vault index of partition %d: %w", part, err)
	}
	e, ok, err := v.store.Get(part, key)
	if err != nil || !ok || len(e.Value) < 8 {
		return nil, err
	}
	var ve schemas.VaultEntry
	if err := serde.Decode(ctx, e.Value[8:], &ve); err != nil {
		return nil, fmt.Errorf("decoding the retirement record of key version %d: %w", version, err)
	}
	if ve.Algorithm != RetiredAlgorithm {
		return nil, nil
	}
	return &RetiredError{Version: version, At: time.UnixMilli(ve.CreatedAt)}, nil
}

// Retire retires a key version in the vault: it writes the retirement
// record, then a tombstone for every entry of the version (found by a range
// scan of the caught-up index, one per partition), so compaction drops them
// from the topic and every index deletes them at its next catch-up. It
// returns the number of entries deleted. Running it again deletes what a
// previous run missed (entries written since, or a run that stopped).
func (v *VaultIndex) Retire(ctx context.Context, serde *schemas.Serde, version uint32, now time.Time) (int, error) {
	for p := range v.parts {
		if _, err := v.CatchUp(ctx, int32(p)); err != nil {
			return 0, fmt.Errorf("catching up the vault index of partition %d: %w", p, err)
		}
	}
	prefix := versionPrefix(version)
	marker, err := serde.Encode(&schemas.VaultEntry{Token: string(prefix), KeyVersion: int32(version),
		Algorithm: RetiredAlgorithm, CreatedAt: now.UnixMilli()})
	if err != nil {
		return 0, err
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), v.clientOpts...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(100_000))...)
	if err != nil {
		return 0, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	// The marker first: from then on detokenize answers "retired", even
	// for entries whose tombstones are still on their way.
	mp := v.Partition(string(prefix))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: v.topic, Partition: mp, Key: prefix, Value: marker}).FirstErr(); err != nil {
		return 0, fmt.Errorf("writing the retirement record of key version %d to %s: %w", version, v.topic, err)
	}
	var (
		n       int
		prodErr error
	)
	for p := range v.parts {
		err := v.store.Range(int32(p), prefix, func(key []byte, _ state.Entry) error {
			if len(key) == len(prefix) {
				return nil // the retirement record itself
			}
			n++
			cl.Produce(ctx, &kgo.Record{Topic: v.topic, Partition: int32(p), Key: append([]byte(nil), key...)},
				func(_ *kgo.Record, err error) {
					if err != nil && prodErr == nil {
						prodErr = err
					}
				})
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return n, err
	}
	if prodErr != nil {
		return n, fmt.Errorf("writing tombstones of key version %d to %s (run keys retire again to finish): %w", version, v.topic, prodErr)
	}
	return n, nil
}

// errRetired tells errCode apart.
func isRetired(err error) bool {
	var re *RetiredError
	return errors.As(err, &re)
}
