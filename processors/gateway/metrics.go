package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pcistream/pcistream/internal/telemetry"
)

// metrics are the gateway's Prometheus series. Labels are route names and
// status codes from fixed sets and stable reason codes: never a path, a
// header or a body value.
type metrics struct {
	isolation   *prometheus.HistogramVec
	requests    *prometheus.CounterVec
	inFlight    prometheus.Gauge
	produce     *prometheus.HistogramVec
	phase       *prometheus.HistogramVec
	rejected    *prometheus.CounterVec
	replays     prometheus.Counter
	checkAborts prometheus.Counter
}

// latencyBuckets resolve the published 12 ms p99 target.
var latencyBuckets = []float64{.0005, .001, .002, .003, .005, .008, .012, .02, .05, .1, .25, .5, 1, 2.5, 5}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		isolation: telemetry.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "payment_context_isolation_duration_seconds",
			Help:    "Time from receiving a card payload to answering with its context id (or failing closed), by route.",
			Buckets: latencyBuckets,
		}, []string{"route"})),
		requests: telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pcistream_gateway_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "status"})),
		inFlight: telemetry.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pcistream_gateway_in_flight_requests",
			Help: "Requests being served now (bounded by --max-in-flight).",
		})),
		produce: telemetry.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pcistream_gateway_produce_duration_seconds",
			Help:    "Duration of the gateway's Kafka transactions, from the batch formed to the commit (Idempotency-Key check included), by outcome.",
			Buckets: latencyBuckets,
		}, []string{"outcome"})),
		phase: telemetry.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pcistream_gateway_commit_phase_duration_seconds",
			Help:    "Time spent around the Kafka transactions: a request's wait for one (queue), the part of a transaction's Idempotency-Key check still running once its records are produced (key_check), recording its entries locally (apply).",
			Buckets: latencyBuckets,
		}, []string{"phase"})),
		rejected: telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pcistream_gateway_rejected_total",
			Help: "Requests refused before Kafka, by stable reason code.",
		}, []string{"reason"})),
		replays: telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pcistream_gateway_idempotent_replays_total",
			Help: "Retries answered with the first response of their Idempotency-Key.",
		})),
		checkAborts: telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pcistream_gateway_key_check_aborts_total",
			Help: "Transactions aborted because their Idempotency-Key check answered some of their requests (key found committed: a retry that reached this instance before its first request's entry; or the check failed); their other requests are written again in a new transaction.",
		})),
	}
}
