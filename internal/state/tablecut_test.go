package state

import (
	"testing"
)

// A bulk restore cuts each key range's data into tables of at most
// tableKeys keys; the store holds the same entries as a batch restore.
func TestBulkRestoreCutsTables(t *testing.T) {
	opts := cluster(t, 1)
	base := int64(1_700_000_000_000)
	txnProduce(t, opts, true, rewrites(400, 200, base)...)
	batch, bulk, _ := restoreBoth(t, &Changelog{Topic: topic, ClientOpts: opts, BulkMin: 1, chunkRecords: 50, tableKeys: 16})
	compareDumps(t, "bulk with small tables", dump(t, bulk), dump(t, batch))
	// 200 keys in tables of at most 16: at least 13 data tables, plus the
	// time index tables (one per chunk).
	m := bulk.DB().Metrics()
	var tables int64
	for _, l := range m.Levels {
		tables += l.TablesCount
	}
	if tables < 13 {
		t.Errorf("%d tables in the store, want at least 13 data tables", tables)
	}
}
