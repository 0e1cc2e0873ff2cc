package bench_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/trustgate/trustgate/bench"
)

// colorRows returns the rows where the image has a pixel of color c in columns [x0, x1).
func colorRows(img image.Image, c color.RGBA, x0, x1 int) []int {
	var rows []int
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := x0; x < x1; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if uint8(r>>8) == c.R && uint8(g>>8) == c.G && uint8(b>>8) == c.B {
				rows = append(rows, y)
				break
			}
		}
	}
	return rows
}

// The plot is a PNG with a line per series, and a slower series is drawn higher up.
func TestSweepPlot(t *testing.T) {
	points := []bench.SweepPoint{
		{Tuples: 1_000, UncachedP50: 200, UncachedP99: 900, CachedP50: 0.2, CachedP99: 1},
		{Tuples: 10_000, UncachedP50: 250, UncachedP99: 1_300, CachedP50: 0.2, CachedP99: 1.1},
		{Tuples: 100_000, UncachedP50: 300, UncachedP99: 2_000, CachedP50: 0.1, CachedP99: 1.3},
	}
	var buf bytes.Buffer
	if err := bench.WriteSweepPlot(&buf, "a sweep", points); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("the plot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 400 {
		t.Fatalf("plot of %v, too small to read", b)
	}
	// Left of the legend: the plotted lines only.
	uncachedP50 := colorRows(img, color.RGBA{0x1f, 0x77, 0xb4, 0xff}, 0, 680)
	uncachedP99 := colorRows(img, color.RGBA{0xd6, 0x27, 0x28, 0xff}, 0, 680)
	cachedP50 := colorRows(img, color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, 0, 680)
	if len(uncachedP50) == 0 || len(uncachedP99) == 0 || len(cachedP50) == 0 {
		t.Fatalf("a series is missing: rows %d, %d, %d", len(uncachedP50), len(uncachedP99), len(cachedP50))
	}
	// Image rows grow downwards: slower is a smaller row.
	if !(uncachedP99[0] < uncachedP50[0] && uncachedP50[len(uncachedP50)-1] < cachedP50[0]) {
		t.Errorf("series out of order: p99 from row %d, p50 rows %d..%d, cached from row %d",
			uncachedP99[0], uncachedP50[0], uncachedP50[len(uncachedP50)-1], cachedP50[0])
	}
	if err := bench.WriteSweepPlot(&bytes.Buffer{}, "empty", nil); err == nil {
		t.Error("an empty sweep was plotted")
	}
}
