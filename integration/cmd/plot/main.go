// Command plot draws the curves of BenchmarkUpgradeScale from the JSON
// lines it appends to -bench.json, and prints them as the Markdown tables
// of BENCHMARKS.md:
//
//	go test -run '^$' -bench UpgradeScale -benchtime 5x -timeout 30m ./integration/ -bench.json /tmp/scale.jsonl
//	go run ./integration/cmd/plot -in /tmp/scale.jsonl -out integration/testdata/scale.svg
//
// The image has one panel per dimension (other processes, workers,
// listeners), each with baton's upgrade time and the polled floor for nginx
// and for a baton master. When a configuration was measured more than once,
// the last line wins.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// result is one line of -bench.json (integration/bench_scale_test.go).
type result struct {
	Server    string  `json:"server"`
	Dimension string  `json:"dimension"`
	Value     int     `json:"value"`
	HostProcs int     `json:"host_procs"`
	Cycles    int     `json:"cycles"`
	PolledMS  float64 `json:"polled_ms"`
	BatonMS   float64 `json:"baton_ms"`
	BatonMin  float64 `json:"baton_min_ms"`
	Load1     float64 `json:"load1"`
	Commit    string  `json:"commit"`
}

// dimensions in the order of the panels, with their axis labels.
var dimensions = []struct{ name, label string }{
	{"procs", "other processes on the host"},
	{"workers", "workers"},
	{"listeners", "listeners (half tcp, half unix)"},
}

var servers = []struct {
	name, label string
	color       color.Color
}{
	{"nginx", "nginx", color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}},
	{"baton", "baton master", color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}},
}

func main() {
	in := flag.String("in", "", "JSON lines from -bench.json (required)")
	out := flag.String("out", "", "image to write: .svg or .png (none: tables only)")
	flag.Parse()
	if err := run(*in, *out, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "plot: %v\n", err)
		os.Exit(1)
	}
}

func run(in, out string, w io.Writer) error {
	if in == "" {
		return errors.New("-in FILE is required")
	}
	rs, err := read(in)
	if err != nil {
		return err
	}
	tables(w, rs)
	if out == "" {
		return nil
	}
	return draw1(rs, out)
}

// read reads the results, the last line of each configuration winning.
func read(path string) (map[string]result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rs := map[string]result{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		rs[key(r.Server, r.Dimension, r.Value)] = r
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%s holds no results", path)
	}
	return rs, nil
}

func key(server, dim string, v int) string { return fmt.Sprintf("%s/%s/%d", server, dim, v) }

// series returns the results of server along dim, by value.
func series(rs map[string]result, server, dim string) []result {
	var out []result
	for _, r := range rs {
		if r.Server == server && r.Dimension == dim {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b result) int { return a.Value - b.Value })
	return out
}

// tables prints one Markdown table per dimension.
func tables(w io.Writer, rs map[string]result) {
	for _, d := range dimensions {
		fmt.Fprintf(w, "%s:\n\n| server | %s | host processes | polled floor ms | baton ms (fastest) | overhead ms | load |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n", d.label, d.name)
		for _, s := range servers {
			for _, r := range series(rs, s.name, d.name) {
				fmt.Fprintf(w, "| %s | %d | %d | %.1f | %.1f (%.1f) | %.1f | %.1f |\n", s.label, r.Value, r.HostProcs, r.PolledMS, r.BatonMS, r.BatonMin, r.BatonMS-r.PolledMS, r.Load1)
			}
		}
		fmt.Fprintln(w)
	}
}

// draw1 draws the three panels side by side into out.
func draw1(rs map[string]result, out string) error {
	var row []*plot.Plot
	for _, d := range dimensions {
		p, err := panel(rs, d.name, d.label)
		if err != nil {
			return err
		}
		row = append(row, p)
	}
	width, height := 36*vg.Centimeter, 11*vg.Centimeter
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	switch filepath.Ext(out) {
	case ".svg":
		c = vgsvg.New(width, height)
	case ".png":
		c = vgimg.PngCanvas{Canvas: vgimg.New(width, height)}
	default:
		return fmt.Errorf("%s: want a .svg or .png file", out)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Centimeter, PadY: vg.Centimeter, PadTop: vg.Centimeter / 2, PadBottom: vg.Centimeter / 2, PadLeft: vg.Centimeter / 2, PadRight: vg.Centimeter / 2}
	canvases := plot.Align([][]*plot.Plot{row}, tiles, dc)
	for i, p := range row {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// panel plots one dimension: per server, baton's median upgrade time
// (solid) and the polled floor (dashed), on logarithmic axes.
func panel(rs map[string]result, dim, label string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "upgrade time vs " + dim
	p.X.Label.Text = label
	p.Y.Label.Text = "ms, median"
	p.X.Scale = plot.LogScale{}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	var ticks []plot.Tick
	top := 0.0
	for _, s := range servers {
		rows := series(rs, s.name, dim)
		if len(rows) == 0 {
			continue
		}
		var baton, floor plotter.XYs
		for _, r := range rows {
			baton = append(baton, plotter.XY{X: float64(r.Value), Y: r.BatonMS})
			floor = append(floor, plotter.XY{X: float64(r.Value), Y: r.PolledMS})
			top = max(top, r.BatonMS, r.PolledMS)
			if !slices.ContainsFunc(ticks, func(t plot.Tick) bool { return t.Value == float64(r.Value) }) {
				ticks = append(ticks, plot.Tick{Value: float64(r.Value), Label: fmt.Sprint(r.Value)})
			}
		}
		for _, l := range []struct {
			xys    plotter.XYs
			name   string
			dashed bool
		}{{baton, s.label + ": baton upgrade start", false}, {floor, s.label + ": polled floor", true}} {
			line, points, err := plotter.NewLinePoints(l.xys)
			if err != nil {
				return nil, err
			}
			line.Color, points.Color = s.color, s.color
			if l.dashed {
				line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
				points.Shape = draw.BoxGlyph{}
			}
			p.Add(line, points)
			p.Legend.Add(l.name, line, points)
		}
	}
	// From zero, with room above the curves for the legend.
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min, p.Y.Max = 0, top*1.6
	return p, nil
}
