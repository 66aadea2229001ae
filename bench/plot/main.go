// Command plot draws the benchmark suite's PNG plots from the JSON results
// the benchmarks write (bench/run.sh passes -json to each):
//
//   - peers-latency.png: produce-to-visible p50 and p99 against offered load,
//     one line per contender (bench/peers);
//
//   - peers-throughput.png: delivered against offered records/s, and each
//     contender's measured capacity (bench/peers);
//
//   - tokenizer-state.png: the tokenizer's idempotency state cost against the
//     number of keys, when bench/tokenizer wrote it.
//
//     go run ./bench/plot -peers bench/out/peers.json -out bench
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"log"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// peersJSON is the part of bench/peers' Results the plots use.
type peersJSON struct {
	Date       string
	Contenders []struct {
		Key, Name, Guarantee string
		PerSec               float64
		Latency              []struct {
			Load, Target, Achieved float64
			P50ms, P99ms           float64
		}
	}
}

// stateJSON is a list of (keys, bytes) points.
type stateJSON struct {
	Title  string
	Points []struct {
		Keys  float64
		Bytes float64
	}
}

func main() {
	var (
		peers = flag.String("peers", "", "bench/peers -json output")
		state = flag.String("state", "", "tokenizer state-cost JSON (optional)")
		out   = flag.String("out", "bench", "directory for the PNGs")
	)
	flag.Parse()
	if *peers != "" {
		var p peersJSON
		if err := readJSON(*peers, &p); err != nil {
			log.Fatal(err)
		}
		if err := plotPeers(p, *out); err != nil {
			log.Fatal(err)
		}
	}
	if *state != "" {
		var s stateJSON
		if err := readJSON(*state, &s); err != nil {
			log.Fatal(err)
		}
		if err := plotState(s, *out); err != nil {
			log.Fatal(err)
		}
	}
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 255}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 255},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 255}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 255},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 255},
}

func plotPeers(p peersJSON, dir string) error {
	lat := plot.New()
	lat.Title.Text = "Produce to visible (read_committed) vs offered load, real Kafka " + p.Date
	lat.X.Label.Text = "offered load (records/s)"
	lat.Y.Label.Text = "latency (ms, log scale)"
	lat.Y.Scale = plot.LogScale{}
	lat.Y.Tick.Marker = plot.LogTicks{}
	lat.Legend.Top = true
	thr := plot.New()
	thr.Title.Text = "Delivered vs offered load, real Kafka " + p.Date
	thr.X.Label.Text = "offered load (records/s)"
	thr.Y.Label.Text = "delivered (records/s)"
	thr.Legend.Top = true
	thr.Legend.Left = true
	for i, c := range p.Contenders {
		col := palette[i%len(palette)]
		var p50, p99, del plotter.XYs
		for _, l := range c.Latency {
			// Records never visible are an hour in the JSON; the run gave
			// up after 60 s, so that is where the plot puts them.
			p50 = append(p50, plotter.XY{X: l.Achieved, Y: min(max(l.P50ms, 0.01), 60000)})
			p99 = append(p99, plotter.XY{X: l.Achieved, Y: min(max(l.P99ms, 0.01), 60000)})
			del = append(del, plotter.XY{X: l.Target, Y: l.Achieved})
		}
		label := c.Key + " (" + c.Guarantee + ")"
		if err := addLine(lat, p99, col, false, label+" p99"); err != nil {
			return err
		}
		if err := addLine(lat, p50, col, true, label+" p50"); err != nil {
			return err
		}
		del = append(del, plotter.XY{X: c.PerSec, Y: c.PerSec})
		if err := addLine(thr, del, col, false, fmt.Sprintf("%s: capacity %.0f/s", label, c.PerSec)); err != nil {
			return err
		}
	}
	if err := lat.Save(9*vg.Inch, 5.5*vg.Inch, filepath.Join(dir, "peers-latency.png")); err != nil {
		return err
	}
	return thr.Save(9*vg.Inch, 5.5*vg.Inch, filepath.Join(dir, "peers-throughput.png"))
}

func addLine(p *plot.Plot, xys plotter.XYs, col color.Color, dashed bool, label string) error {
	if len(xys) == 0 {
		return nil
	}
	l, pts, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color, pts.Color = col, col
	pts.Shape = draw.CircleGlyph{}
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(l, pts)
	p.Legend.Add(label, l, pts)
	return nil
}

func plotState(s stateJSON, dir string) error {
	p := plot.New()
	p.Title.Text = s.Title
	p.X.Label.Text = "keys (log scale)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{}
	p.Y.Label.Text = "bytes per key"
	p.Y.Min = 0 // Go maps grow in steps: the swings are small next to the level
	var xys plotter.XYs
	for _, pt := range s.Points {
		xys = append(xys, plotter.XY{X: pt.Keys, Y: pt.Bytes / max(pt.Keys, 1)})
	}
	if err := addLine(p, xys, palette[0], false, "bytes per key"); err != nil {
		return err
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(dir, "tokenizer-state.png"))
}
