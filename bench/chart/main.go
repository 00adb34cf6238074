// Command chart draws the fanout sweep of docs/benchmarks.md as an SVG:
// deliveries per server CPU-second and p99 latency against the number of
// subscribers, from the JSON lines that `herald-bench fanout` prints (one
// per run; bench/sweep.sh collects them).
//
//	go run ./bench/chart -o docs/benchmarks-fanout.svg sweep.jsonl [more.jsonl ...]
//
// Runs are grouped into series by their publishing mode: "as fast as
// possible" (params.rate = 0) and "paced" (params.rate > 0). Several runs at
// the same subscriber count are reduced to their median. Lines that are not
// fanout results, or that did not pass (ok = false), are skipped with a
// note on stderr. Standard library only.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// result is the part of a load tool JSON line the chart needs.
type result struct {
	Name     string         `json:"name"`
	Scenario string         `json:"scenario"`
	OK       bool           `json:"ok"`
	Params   map[string]any `json:"params"`
	DPerCPU  *float64       `json:"deliveries_per_server_cpu_second"`
	Latency  *struct {
		P99 float64 `json:"p99"`
	} `json:"latency_ms"`
}

func (r *result) param(k string) float64 {
	v, _ := r.Params[k].(float64)
	return v
}

// point is one x with the values of every run at it.
type point struct {
	x       float64
	dPerCPU []float64
	p99     []float64
}

type series struct {
	label  string
	color  string
	points map[float64]*point
}

func (s *series) sorted() []*point {
	out := make([]*point, 0, len(s.points))
	for _, p := range s.points {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].x < out[j].x })
	return out
}

func median(v []float64) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

func main() {
	out := flag.String("o", "", "SVG file to write (default stdout)")
	title := flag.String("title", "Herald fanout on one channel", "chart title")
	sub := flag.String("subtitle", "", "second title line (machine, load)")
	flag.Parse()

	fast := &series{label: "as fast as possible (8 publishers)", color: "#1f77b4", points: map[float64]*point{}}
	paced := &series{label: "paced (20,000 deliveries/s in total)", color: "#d62728", points: map[float64]*point{}}

	inputs := flag.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	for _, name := range inputs {
		var r io.Reader = os.Stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				fatal(err)
			}
			r = f
		}
		err := read(r, name, fast, paced)
		if c, ok := r.(io.Closer); ok && name != "-" {
			_ = c.Close()
		}
		if err != nil {
			fatal(err)
		}
	}
	if len(fast.points)+len(paced.points) == 0 {
		fatal(fmt.Errorf("no passing fanout results in %s", strings.Join(inputs, ", ")))
	}
	svg := render(*title, *sub, []*series{fast, paced})
	if *out == "" {
		_, _ = os.Stdout.WriteString(svg)
		return
	}
	if err := os.WriteFile(*out, []byte(svg), 0o644); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "chart:", err)
	os.Exit(1)
}

func read(r io.Reader, name string, fast, paced *series) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		b := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(b, "{") {
			continue
		}
		var res result
		if err := json.Unmarshal([]byte(b), &res); err != nil {
			fmt.Fprintf(os.Stderr, "chart: %s:%d: skipped: %v\n", name, line, err)
			continue
		}
		if res.Scenario != "fanout" {
			continue
		}
		if !res.OK {
			fmt.Fprintf(os.Stderr, "chart: %s:%d: skipped a run that did not pass (%s)\n", name, line, res.Name)
			continue
		}
		s := fast
		if res.param("rate") > 0 {
			s = paced
		}
		x := res.param("conns")
		p := s.points[x]
		if p == nil {
			p = &point{x: x}
			s.points[x] = p
		}
		if res.DPerCPU != nil {
			p.dPerCPU = append(p.dPerCPU, *res.DPerCPU)
		}
		if res.Latency != nil {
			p.p99 = append(p.p99, res.Latency.P99)
		}
	}
	return sc.Err()
}

// ---- drawing ----

const (
	panelW, panelH = 460, 300
	marginL        = 80
	marginR        = 20
	marginT        = 70
	marginB        = 95
	gap            = 70
)

type panel struct {
	title  string
	yLabel string
	value  func(*point) []float64
	format func(float64) string
	logY   bool
}

func render(title, subtitle string, all []*series) string {
	panels := []panel{
		{title: "Deliveries per server CPU-second", yLabel: "deliveries / server CPU-s", value: func(p *point) []float64 { return p.dPerCPU }, format: human, logY: true},
		{title: "Latency p99, HTTP publish to receipt", yLabel: "p99 latency (ms)", value: func(p *point) []float64 { return p.p99 }, format: ms, logY: true},
	}
	// x domain: every subscriber count seen.
	xmin, xmax := math.Inf(1), math.Inf(-1)
	var xs []float64
	seen := map[float64]bool{}
	for _, s := range all {
		for x := range s.points {
			xmin, xmax = math.Min(xmin, x), math.Max(xmax, x)
			if !seen[x] {
				seen[x] = true
				xs = append(xs, x)
			}
		}
	}
	sort.Float64s(xs)
	if xmin == xmax {
		xmin, xmax = xmin/2, xmax*2
	}
	lx0, lx1 := math.Log10(xmin)-0.1, math.Log10(xmax)+0.1

	width := marginL + 2*panelW + gap + marginR
	height := marginT + panelH + marginB
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", marginL, esc(title))
	if subtitle != "" {
		fmt.Fprintf(&b, `<text x="%d" y="40" fill="#555">%s</text>`+"\n", marginL, esc(subtitle))
	}
	for i, pn := range panels {
		ox := marginL + i*(panelW+gap)
		oy := marginT
		// y domain over every series.
		ymin, ymax := math.Inf(1), math.Inf(-1)
		for _, s := range all {
			for _, p := range s.points {
				if v, ok := median(pn.value(p)); ok && v > 0 {
					ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
				}
			}
		}
		if math.IsInf(ymin, 1) {
			ymin, ymax = 1, 10
		}
		ly0, ly1 := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
		if ly0 == ly1 {
			ly1++
		}
		xpos := func(x float64) float64 { return float64(ox) + (math.Log10(x)-lx0)/(lx1-lx0)*panelW }
		ypos := func(y float64) float64 { return float64(oy+panelH) - (math.Log10(y)-ly0)/(ly1-ly0)*panelH }

		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", ox, oy-12, esc(pn.title))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", ox, oy, panelW, panelH)
		// y grid: decades and 2x, 5x.
		for d := ly0; d <= ly1; d++ {
			for _, m := range []float64{1, 2, 5} {
				v := m * math.Pow(10, d)
				if math.Log10(v) > ly1+1e-9 {
					continue
				}
				y := ypos(v)
				stroke := "#eee"
				if m == 1 {
					stroke = "#ccc"
				}
				fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", ox, y, ox+panelW, y, stroke)
				fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#333">%s</text>`+"\n", ox-6, y+4, pn.format(v))
			}
		}
		// x ticks at the measured subscriber counts.
		for _, x := range xs {
			px := xpos(x)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`+"\n", px, oy, px, oy+panelH)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#333">%s</text>`+"\n", px, oy+panelH+16, human(x))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">subscribers on one channel (log scale)</text>`+"\n", ox+panelW/2, oy+panelH+36)
		fmt.Fprintf(&b, `<text transform="translate(%d,%d) rotate(-90)" text-anchor="middle">%s (log scale)</text>`+"\n", ox-58, oy+panelH/2, esc(pn.yLabel))
		// series.
		for si, s := range all {
			var path []string
			for _, p := range s.sorted() {
				v, ok := median(pn.value(p))
				if !ok || v <= 0 {
					continue
				}
				px, py := xpos(p.x), ypos(v)
				path = append(path, fmt.Sprintf("%.1f,%.1f", px, py))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s subscribers: %s (median of %d)</title></circle>`+"\n",
					px, py, s.color, human(p.x), pn.format(v), len(pn.value(p)))
				ty := py - 7 // first series' labels above its points, the others' below
				if si > 0 {
					ty = py + 15
				}
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" fill="%s" text-anchor="middle">%s</text>`+"\n", px, ty, s.color, pn.format(v))
			}
			if len(path) > 1 {
				fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(path, " "), s.color)
			}
		}
	}
	// legend.
	ly := marginT + panelH + 60
	lxPos := marginL
	for _, s := range all {
		if len(s.points) == 0 {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/><circle cx="%d" cy="%d" r="3.5" fill="%s"/>`+"\n", lxPos, ly, lxPos+24, ly, s.color, lxPos+12, ly, s.color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", lxPos+30, ly+4, esc(s.label))
		lxPos += 330
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return trim(v/1e6) + "M"
	case v >= 1e3:
		return trim(v/1e3) + "k"
	default:
		return trim(v)
	}
}

func ms(v float64) string {
	return trim(v)
}

func trim(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	if v >= 100 {
		s = strconv.FormatFloat(v, 'f', 0, 64)
	} else if v >= 10 {
		s = strconv.FormatFloat(v, 'f', 1, 64)
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func esc(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	return r.Replace(s)
}
