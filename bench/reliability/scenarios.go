package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pcistream/pcistream/internal/config"
	"github.com/pcistream/pcistream/internal/devstack"
	"github.com/pcistream/pcistream/internal/devstack/kafkabroker"
)

// params size a run.
type params struct {
	bin      string
	dir      string
	events   int
	rate     int // offered events/s
	kills    int
	workers  int
	session  time.Duration
	short    bool
	only     string
	external string              // external Kafka brokers (the dev stack then serves only the registry and S3)
	kafka    *kafkabroker.Broker // a real broker the run started (external is its address); nil on kfake
	log      func(format string, a ...any)
}

// row is one scenario's line in RELIABILITY.md.
type row struct {
	name            string
	events, kills   int
	faults          string
	t               tally
	recovery        []time.Duration
	drain           time.Duration // after the last fault
	elapsed         time.Duration // first event offered to all committed
	exits           []string
	err             error
	throughput      float64
	cleanThroughput float64
	s3              *s3Result // the auditor scenarios' own measures
}

// env is one scenario's stack and workers.
type env struct {
	p       params
	dev     *devProc
	brokers string
	n       names
	workers []*worker
}

func setup(ctx context.Context, p params, name string) (*env, error) {
	return setupWith(ctx, p, name, p.workers)
}

// setupWith starts the stack and maskers masker workers.
func setupWith(ctx context.Context, p params, name string, maskers int) (*env, error) {
	dir := filepath.Join(p.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dev, err := newDev(p.bin, dir)
	if err != nil {
		return nil, err
	}
	if err := dev.start(ctx); err != nil {
		return nil, err
	}
	e := &env{p: p, dev: dev, brokers: dev.brokers(), n: newNames("")}
	if p.external != "" {
		e.brokers = p.external
		e.n = newNames(fmt.Sprintf("rel%d-%s-", time.Now().Unix(), name))
		c := config.Default()
		c.Kafka.Brokers = strings.Split(p.external, ",")
		c.Registry.URL = dev.registryURL()
		c.Topics = e.n.tp
		if err := devstack.Setup(ctx, c); err != nil {
			dev.stop(syscall.SIGTERM)
			return nil, fmt.Errorf("topology on %s: %w", p.external, err)
		}
	}
	for i := 0; i < maskers; i++ {
		if _, err := e.addWorker(dir, i); err != nil {
			e.close()
			return nil, err
		}
	}
	for _, w := range e.workers {
		if err := waitReady(ctx, w, 90*time.Second); err != nil {
			e.close()
			return nil, err
		}
	}
	return e, nil
}

func (e *env) addWorker(dir string, i int) (*worker, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	w := &worker{
		name: fmt.Sprintf("masker-%d", i), bin: e.p.bin, logDir: dir, metrics: port,
		args: []string{"run", "masker", "--brokers", e.brokers, "--registry-url", e.dev.registryURL(),
			"--group", e.n.grp, "--transactional-id", fmt.Sprintf("%srel-masker-%d", e.n.prefix, i),
			"--session-timeout", e.p.session.String(),
			"--topic-logs-raw", e.n.in, "--topic-logs-sanitized", e.n.out, "--topic-logs-dlq", e.n.dlq,
			"--topic-audit-events", e.n.audit},
	}
	if err := w.start(); err != nil {
		return nil, err
	}
	e.workers = append(e.workers, w)
	return w, nil
}

func waitReady(ctx context.Context, w *worker, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if code, _ := w.readyz(); code == 200 {
			return nil
		}
		if !w.alive() {
			return fmt.Errorf("%s exited before it was ready (see its log in the run directory)", w.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, body := w.readyz()
	return fmt.Errorf("%s not ready within %s: %d %s", w.name, limit, code, body)
}

func (e *env) close() {
	for _, w := range e.workers {
		w.kill(syscall.SIGTERM)
	}
	e.dev.stop(syscall.SIGTERM)
}

// unexpected returns workers' exits nobody asked for.
func (e *env) unexpected() []string {
	var out []string
	for _, w := range e.workers {
		w.alive()
		w.mu.Lock()
		out = append(out, w.exitErrs...)
		w.mu.Unlock()
	}
	return out
}

// finish stops the producer, waits for the group to commit everything and
// counts the outputs.
func (e *env) finish(ctx context.Context, r *row, pr *producer, start, lastFault time.Time) {
	if err := pr.finish(ctx); err != nil {
		r.err = err
		return
	}
	if _, err := waitDrained(ctx, e.brokers, e.n, 5*time.Minute); err != nil {
		r.err = err
	}
	r.elapsed = time.Since(start)
	if !lastFault.IsZero() {
		r.drain = time.Since(lastFault)
	}
	r.throughput = float64(pr.acked.Load()) / r.elapsed.Seconds()
	t, err := check(ctx, e.brokers, e.n, int(pr.acked.Load()))
	r.t = t
	if r.err == nil {
		r.err = err
	}
	r.exits = e.unexpected()
}

// begin sets up a scenario's stack and workers and starts offering its
// load; start is when the first event was offered.
func begin(ctx context.Context, p params, name string) (*env, *producer, time.Time, error) {
	e, err := setup(ctx, p, name)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	start := time.Now()
	pr, err := startProducer(e.brokers, e.n.in, p.rate, p.events)
	if err != nil {
		e.close()
		return nil, nil, time.Time{}, err
	}
	return e, pr, start, nil
}

// clean runs the load with no faults: the baseline.
func clean(ctx context.Context, p params) row {
	r := row{name: "clean (baseline)", events: p.events, faults: "none"}
	e, pr, start, err := begin(ctx, p, "clean")
	if err != nil {
		r.err = err
		return r
	}
	defer e.close()
	e.finish(ctx, &r, pr, start, time.Time{})
	return r
}

// workerKills SIGKILLs a worker (round robin) at even intervals while the
// load runs, restarts it at once with the same identity, and measures how
// long until the restarted process commits a transaction.
func workerKills(ctx context.Context, p params) row {
	r := row{name: "worker SIGKILL + restart", events: p.events, kills: p.kills, faults: fmt.Sprintf("%d × SIGKILL of a worker", p.kills)}
	e, pr, start, err := begin(ctx, p, "kills")
	if err != nil {
		r.err = err
		return r
	}
	defer e.close()
	var last time.Time
	for k := 0; k < p.kills && ctx.Err() == nil; k++ {
		// Spread the kills over the first 80% of the offered load.
		pr.waitProduced(ctx, int64(p.events*8/10*(k+1)/(p.kills+1)))
		w := e.workers[k%len(e.workers)]
		w.kill(syscall.SIGKILL)
		last = time.Now()
		if err := w.start(); err != nil {
			r.err = err
			return r
		}
		if at, ok := w.waitBack(ctx, func() bool { return lag(ctx, e.brokers, e.n) == 0 }, 2*time.Minute); ok {
			r.recovery = append(r.recovery, at.Sub(last))
		} else {
			r.err = fmt.Errorf("%s did not commit within 2m of its restart while input waited", w.name)
			break
		}
		p.log("  kill %d/%d: %s committing again after %s", k+1, p.kills, w.name, r.recovery[len(r.recovery)-1].Round(time.Millisecond))
	}
	e.finish(ctx, &r, pr, start, last)
	return r
}

// storm adds and removes two extra workers per round (scale 2 → 4 → 2)
// while the load runs: each leave is a SIGTERM or a SIGKILL, and the
// extras keep their identities across rounds, like pods of a StatefulSet
// that crash-loop. The last round leaves with SIGTERM.
func storm(ctx context.Context, p params) row {
	r := row{name: "rebalance storm", events: p.events}
	e, pr, start, err := begin(ctx, p, "storm")
	if err != nil {
		r.err = err
		return r
	}
	defer e.close()
	rng := rand.New(rand.NewPCG(7, 13))
	dir := filepath.Join(p.dir, "storm")
	var extra []*worker
	for i := 0; i < 2; i++ {
		w, err := e.addWorker(dir, p.workers+i)
		if err != nil {
			r.err = err
			return r
		}
		w.kill(syscall.SIGTERM) // started by addWorker; rounds start them
		extra = append(extra, w)
	}
	changes := 0
	var last time.Time
	rounds := max(2, p.kills/2)
	for round := 0; round < rounds && ctx.Err() == nil; round++ {
		pr.waitProduced(ctx, int64(p.events*8/10*(round+1)/(rounds+1)))
		for _, w := range extra {
			if err := w.start(); err != nil {
				r.err = err
				return r
			}
			changes++
		}
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		for _, w := range extra {
			sig := syscall.SIGTERM
			if round < rounds-1 && rng.IntN(2) == 0 {
				sig = syscall.SIGKILL
				r.kills++
			}
			w.kill(sig)
			changes++
		}
		last = time.Now()
	}
	r.faults = fmt.Sprintf("%d joins and leaves in %d rounds (leaves: SIGTERM or SIGKILL)", changes, rounds)
	e.finish(ctx, &r, pr, start, last)
	return r
}

// brokerFault stops the dev stack with sig mid-load and restarts it on the
// same data dir and ports; every worker must keep running and commit again.
func brokerFault(ctx context.Context, p params, sig syscall.Signal) row {
	name := map[syscall.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM"}[sig]
	r := row{name: "broker " + name + " + restart on its data dir", events: p.events, faults: "1 × " + name + " of " + p.brokerName()}
	e, pr, start, err := begin(ctx, p, "broker-"+strings.ToLower(name))
	if err != nil {
		r.err = err
		return r
	}
	defer e.close()
	pr.waitProduced(ctx, int64(p.events/2))
	e.brokerDown(sig)
	if err := e.brokerUp(ctx); err != nil {
		r.err = err
		return r
	}
	up := time.Now()
	// A worker is back when it commits again, or when the group has
	// nothing left to do (at the end of a short load a worker's partitions
	// may have been drained by another member during the rebalance).
	for _, w := range e.workers {
		c := w.commits()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if w.commits() > c || lag(ctx, e.brokers, e.n) == 0 {
				r.recovery = append(r.recovery, time.Since(up))
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				r.err = fmt.Errorf("%s did not commit within 2m of the broker's restart while input waited", w.name)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	e.finish(ctx, &r, pr, start, up)
	return r
}

func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
