package bench

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The plot's size and margins, in pixels.
const (
	plotWidth  = 900
	plotHeight = 540
	plotLeft   = 80
	plotRight  = 210 // the legend's column
	plotTop    = 44
	plotBottom = 56
)

// The targets of the uncached check, drawn as dashed lines.
const (
	targetP50 = 1_000 // µs
	targetP99 = 5_000 // µs
)

// plotSeries is one line of the plot: a latency of every point.
type plotSeries struct {
	name  string
	color color.RGBA
	value func(SweepPoint) float64
}

var sweepSeries = []plotSeries{
	{"uncached p50", color.RGBA{0x1f, 0x77, 0xb4, 0xff}, func(p SweepPoint) float64 { return p.UncachedP50 }},
	{"uncached p99", color.RGBA{0xd6, 0x27, 0x28, 0xff}, func(p SweepPoint) float64 { return p.UncachedP99 }},
	{"cached p50", color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, func(p SweepPoint) float64 { return p.CachedP50 }},
	{"cached p99", color.RGBA{0xff, 0x7f, 0x0e, 0xff}, func(p SweepPoint) float64 { return p.CachedP99 }},
}

var (
	plotInk    = color.RGBA{0x22, 0x22, 0x22, 0xff}
	plotGrid   = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	plotTarget = color.RGBA{0x88, 0x88, 0x88, 0xff}
)

// WriteSweepPlot draws the sweep as a PNG: the check's latency (log scale) against the number of
// relationships (log scale), uncached and cached, p50 and p99, with the uncached targets
// (p50 ≤ 1 ms, p99 ≤ 5 ms) as dashed lines. title names the run (shape, datastore).
func WriteSweepPlot(w io.Writer, title string, points []SweepPoint) error {
	if len(points) == 0 {
		return errors.New("plot the sweep: no points")
	}
	minX, maxX := math.Inf(1), math.Inf(-1)
	minY, maxY := float64(targetP50), float64(targetP99)
	for _, p := range points {
		if p.Tuples <= 0 {
			return fmt.Errorf("plot the sweep: a point with %d relationships", p.Tuples)
		}
		minX, maxX = math.Min(minX, float64(p.Tuples)), math.Max(maxX, float64(p.Tuples))
		for _, s := range sweepSeries {
			if v := s.value(p); v > 0 {
				minY, maxY = math.Min(minY, v), math.Max(maxY, v)
			}
		}
	}
	// Whole decades on both axes, at least one wide. The sweep's sizes land a little above their
	// decade (100 125 for 10^5): that much may pass the axis's last decade.
	x0, x1 := math.Floor(math.Log10(minX)+0.05), math.Ceil(math.Log10(maxX)-0.05)
	if x1 == x0 {
		x1++
	}
	y0, y1 := math.Floor(math.Log10(minY)), math.Ceil(math.Log10(maxY))
	if y1 == y0 {
		y1++
	}
	img := image.NewRGBA(image.Rect(0, 0, plotWidth, plotHeight))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	area := image.Rect(plotLeft, plotTop, plotWidth-plotRight, plotHeight-plotBottom)
	px := func(tuples float64) int {
		return area.Min.X + int(math.Round((math.Log10(tuples)-x0)/(x1-x0)*float64(area.Dx())))
	}
	py := func(us float64) int {
		return area.Max.Y - int(math.Round((math.Log10(us)-y0)/(y1-y0)*float64(area.Dy())))
	}
	face := basicfont.Face7x13

	for d := x0; d <= x1; d++ {
		x := px(math.Pow(10, d))
		line(img, x, area.Min.Y, x, area.Max.Y, plotGrid, 1, 0)
		label := fmt.Sprintf("10^%d", int(d))
		text(img, face, x-textWidth(face, label)/2, area.Max.Y+18, label, plotInk)
	}
	for d := y0; d <= y1; d++ {
		y := py(math.Pow(10, d))
		line(img, area.Min.X, y, area.Max.X, y, plotGrid, 1, 0)
		label := durationLabel(math.Pow(10, d))
		text(img, face, area.Min.X-8-textWidth(face, label), y+4, label, plotInk)
	}
	for _, t := range []struct {
		us    float64
		label string
	}{{targetP50, "target p50"}, {targetP99, "target p99"}} {
		y := py(t.us)
		line(img, area.Min.X, y, area.Max.X, y, plotTarget, 1, 6)
		text(img, face, area.Max.X-textWidth(face, t.label)-4, y-4, t.label, plotTarget)
	}
	line(img, area.Min.X, area.Max.Y, area.Max.X, area.Max.Y, plotInk, 1, 0)
	line(img, area.Min.X, area.Min.Y, area.Min.X, area.Max.Y, plotInk, 1, 0)
	text(img, face, area.Min.X+area.Dx()/2-textWidth(face, "relationships")/2, plotHeight-14, "relationships", plotInk)
	text(img, face, 8, plotTop-14, "check latency", plotInk)
	text(img, face, area.Min.X+area.Dx()/2-textWidth(face, title)/2, 20, title, plotInk)

	for i, s := range sweepSeries {
		lastX, lastY, have := 0, 0, false
		for _, p := range points {
			v := s.value(p)
			if v <= 0 {
				have = false
				continue
			}
			x, y := px(float64(p.Tuples)), py(v)
			if have {
				line(img, lastX, lastY, x, y, s.color, 2, 0)
			}
			dot(img, x, y, s.color)
			lastX, lastY, have = x, y, true
		}
		ly := area.Min.Y + 10 + i*22
		lx := area.Max.X + 20
		line(img, lx, ly, lx+28, ly, s.color, 2, 0)
		dot(img, lx+14, ly, s.color)
		text(img, face, lx+36, ly+4, s.name, plotInk)
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("plot the sweep: %w", err)
	}
	return nil
}

// durationLabel names a latency in microseconds with its unit (ASCII: the font has no µ).
func durationLabel(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%g s", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%g ms", us/1e3)
	default:
		return fmt.Sprintf("%g us", us)
	}
}

// line draws from (x0, y0) to (x1, y1), width pixels thick; dash > 0 draws dash pixels, skips as
// many, and so on.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, width, dash int) {
	dx, dy := float64(x1-x0), float64(y1-y0)
	steps := int(math.Max(math.Abs(dx), math.Abs(dy)))
	for i := 0; i <= steps; i++ {
		if dash > 0 && (i/dash)%2 == 1 {
			continue
		}
		t := 0.0
		if steps > 0 {
			t = float64(i) / float64(steps)
		}
		x, y := x0+int(math.Round(t*dx)), y0+int(math.Round(t*dy))
		for ox := 0; ox < width; ox++ {
			for oy := 0; oy < width; oy++ {
				img.SetRGBA(x+ox-width/2, y+oy-width/2, c)
			}
		}
	}
}

// dot draws a filled point of radius 3.
func dot(img *image.RGBA, x, y int, c color.RGBA) {
	for ox := -3; ox <= 3; ox++ {
		for oy := -3; oy <= 3; oy++ {
			if ox*ox+oy*oy <= 9 {
				img.SetRGBA(x+ox, y+oy, c)
			}
		}
	}
}

func text(img *image.RGBA, face font.Face, x, y int, s string, c color.RGBA) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func textWidth(face font.Face, s string) int {
	return font.MeasureString(face, s).Round()
}
