package state

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pcistream/pcistream/internal/telemetry"
)

// Metrics are a Table's restore metrics. A nil *Metrics records nothing.
type Metrics struct {
	remaining *prometheus.GaugeVec
	restored  *prometheus.CounterVec
	statusG   *prometheus.GaugeVec
}

// NewMetrics registers the restore metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		remaining: telemetry.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pcistream_state_restore_remaining_offsets", Help: "Changelog offsets left to restore, per partition.",
		}, []string{"topic", "partition"})),
		restored: telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pcistream_state_restored_records_total", Help: "Changelog records applied to the local store by restores.",
		}, []string{"topic"})),
		statusG: telemetry.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pcistream_state_partition_status", Help: "0 not owned, 1 restoring, 2 restored, 3 restore failed.",
		}, []string{"topic", "partition"})),
	}
}

// progress records p; applied is the records applied since the last call.
func (m *Metrics) progress(topic string, p Progress, applied int64) {
	if m == nil {
		return
	}
	part := strconv.FormatInt(int64(p.Partition), 10)
	m.remaining.WithLabelValues(topic, part).Set(float64(p.Remaining()))
	m.restored.WithLabelValues(topic).Add(float64(applied))
}

func (m *Metrics) status(topic string, part int32, s Status) {
	if m == nil {
		return
	}
	m.statusG.WithLabelValues(topic, strconv.FormatInt(int64(part), 10)).Set(float64(s))
}
