package eos

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pcistream/pcistream/internal/telemetry"
)

type metrics struct {
	in      prometheus.Counter
	out     *prometheus.CounterVec
	commits prometheus.Counter
	aborts  prometheus.Counter
	lag     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, name string) *metrics {
	in := telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pcistream_records_in_total", Help: "Input records processed in committed transactions.",
	}, []string{"processor"}))
	out := telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pcistream_records_out_total", Help: "Output records produced in committed transactions, by topic.",
	}, []string{"processor", "topic"}))
	commits := telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pcistream_txn_commits_total", Help: "Committed transactions.",
	}, []string{"processor"}))
	aborts := telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pcistream_txn_aborts_total", Help: "Aborted transactions, and transactions whose outcome was unknown.",
	}, []string{"processor"}))
	lag := telemetry.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pcistream_consumer_lag", Help: "Records behind the high watermark at the last fetch.",
	}, []string{"processor", "topic", "partition"}))
	return &metrics{
		in:      in.WithLabelValues(name),
		out:     out,
		commits: commits.WithLabelValues(name),
		aborts:  aborts.WithLabelValues(name),
		lag:     lag,
	}
}
