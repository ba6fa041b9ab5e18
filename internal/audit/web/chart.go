package web

import (
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/store"
)

// Chart is a stacked bar chart drawn as SVG by the template.
type Chart struct {
	Width, Height, PlotTop, PlotBottom int
	Bars                               []Bar
	Legend                             []Legend
	Label                              string // a text summary for screen readers
	Start, End                         string
	Max                                int
	Sampled                            bool
	Total                              int
}

// Bar is one rectangle.
type Bar struct {
	X, Y, W, H int
	Fill       string
	Title      string
}

// Legend names a series' colour.
type Legend struct {
	Name, Fill string
	Total      int
}

// palette is colour-blind safe (Okabe–Ito).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"}

func chart(tl store.Timeline, by string) *Chart {
	if tl.Total == 0 || len(tl.Series) == 0 {
		return nil
	}
	c := &Chart{Width: 960, Height: 220, PlotTop: 10, PlotBottom: 190, Sampled: tl.Sampled, Total: tl.Total,
		Start: tl.Start.UTC().Format("2006-01-02 15:04"), End: tl.End.UTC().Format("2006-01-02 15:04")}
	n := len(tl.Series[0].Counts)
	sums := make([]int, n)
	for _, s := range tl.Series {
		for i, v := range s.Counts {
			sums[i] += v
		}
	}
	for _, v := range sums {
		c.Max = max(c.Max, v)
	}
	plotH := c.PlotBottom - c.PlotTop
	bw := max(c.Width/n, 1)
	for i := range n {
		y := c.PlotBottom
		for si, s := range tl.Series {
			v := s.Counts[i]
			if v == 0 {
				continue
			}
			h := max(v*plotH/c.Max, 1)
			y -= h
			at := tl.Start.Add(time.Duration(i) * tl.Bucket).UTC().Format("15:04:05")
			c.Bars = append(c.Bars, Bar{X: i * bw, Y: y, W: max(bw-1, 1), H: h, Fill: palette[si%len(palette)],
				Title: fmt.Sprintf("%s %s: %d events from %s", by, s.Name, v, at)})
		}
	}
	for si, s := range tl.Series {
		c.Legend = append(c.Legend, Legend{Name: s.Name, Fill: palette[si%len(palette)], Total: s.Total})
	}
	c.Label = fmt.Sprintf("Events over time by %s, %s to %s, %d buckets of %s; busiest bucket %d events", by, c.Start, c.End, n, tl.Bucket, c.Max)
	return c
}
