package tokenizer

import (
	"errors"
	"fmt"

	"github.com/hamba/avro/v2"

	"github.com/pcistream/pcistream/schemas"
)

// hamba/avro encodes Go maps in map-iteration order, which Go randomises: an
// AuditEvent with two or more attrs would encode differently on every run,
// and a replay of the same offsets would not be byte-identical. The audit
// schema keeps attrs as its last field, so the tokenizer encodes the event
// with empty attrs and then writes the map itself as one Avro block with
// sorted keys: valid Avro, same reader result, deterministic bytes.

// checkAuditSchema verifies the assumption above at start-up.
func checkAuditSchema() error {
	defs, err := schemas.Defs()
	if err != nil {
		return err
	}
	for _, d := range defs {
		if d.File != "audit_event.avsc" {
			continue
		}
		rs, ok := d.Schema.(*avro.RecordSchema)
		if !ok || len(rs.Fields()) == 0 {
			return errors.New("audit schema is not a record")
		}
		last := rs.Fields()[len(rs.Fields())-1]
		if last.Name() != "attrs" || last.Type().Type() != avro.Map {
			return fmt.Errorf("audit schema's last field is %q, not the attrs map: update tokenizer's audit encoding", last.Name())
		}
		return nil
	}
	return errors.New("audit schema not found")
}

// EncodeAudit encodes ev in the Confluent wire format. schemas.Serde writes
// attrs in sorted key order, so equal events always encode to equal bytes.
func EncodeAudit(s *schemas.Serde, ev schemas.AuditEvent) ([]byte, error) {
	return s.Encode(&ev)
}
