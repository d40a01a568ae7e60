package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"
	"time"
)

// Colours of the stand-in's screen.
var (
	colBackground = color.RGBA{0x1b, 0x26, 0x3b, 0xff}
	colBar        = color.RGBA{0x0d, 0x13, 0x1e, 0xff}
	colText       = color.RGBA{0xf0, 0xf0, 0xf0, 0xff}
	colDim        = color.RGBA{0x9a, 0xa5, 0xb8, 0xff}
	colTap        = color.RGBA{0xff, 0x4d, 0x4d, 0xff}
	colLastTap    = color.RGBA{0xff, 0xd2, 0x3f, 0xff}
)

// canvas draws on an RGBA image.
type canvas struct{ img *image.RGBA }

func (c canvas) fill(r image.Rectangle, col color.RGBA) {
	r = r.Intersect(c.img.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := c.img.Pix[c.img.PixOffset(r.Min.X, y):c.img.PixOffset(r.Max.X, y)]
		for i := 0; i < len(row); i += 4 {
			row[i], row[i+1], row[i+2], row[i+3] = col.R, col.G, col.B, col.A
		}
	}
}

// text draws s with its top-left corner at (x, y), each font pixel scale
// pixels wide, and returns the x after the last character.
func (c canvas) text(x, y, scale int, s string, col color.RGBA) int {
	for _, r := range s {
		g := glyph(r)
		for row := 0; row < 7; row++ {
			for bit := 0; bit < 5; bit++ {
				if g[row]&(0x10>>bit) != 0 {
					c.fill(image.Rect(x+bit*scale, y+row*scale, x+(bit+1)*scale, y+(row+1)*scale), col)
				}
			}
		}
		x += 6 * scale
	}
	return x
}

// ring draws a circle outline of radius r and thickness w around (x, y),
// with a cross in its middle.
func (c canvas) ring(x, y, r, w int, col color.RGBA) {
	for dy := -r; dy <= r; dy++ {
		for dx := -r; dx <= r; dx++ {
			d := dx*dx + dy*dy
			if d <= r*r && d >= (r-w)*(r-w) {
				c.fill(image.Rect(x+dx, y+dy, x+dx+1, y+dy+1), col)
			}
		}
	}
	c.fill(image.Rect(x-r/2, y-w/2, x+r/2, y+w/2+1), col)
	c.fill(image.Rect(x-w/2, y-r/2, x+w/2+1, y+r/2), col)
}

// screenState is what a screenshot shows.
type screenState struct {
	Name          string
	Width, Height int
	Density       int
	Now           time.Time
	Text          string   // typed with `input text`
	Keys          []string // recent `input keyevent` codes, oldest first
	Taps          []image.Point
	Packages      int
}

// render draws the screen as a PNG.
func render(st screenState) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, st.Width, st.Height))
	c := canvas{img}
	c.fill(img.Rect, colBackground)
	scale := max(1, st.Width/180) // body text: 30 characters a line on 720 px
	big := max(1, st.Width/110)   // the name
	line := 9 * scale             // body line height
	cols := max(1, (st.Width-2*scale*4)/(6*scale))
	margin := 4 * scale

	c.fill(image.Rect(0, 0, st.Width, 11*scale), colBar)
	c.text(margin, 2*scale, scale, st.Now.UTC().Format("15:04:05"), colText)
	c.text(st.Width-margin-6*scale*len("STAND-IN"), 2*scale, scale, "STAND-IN", colDim)

	y := 16 * scale
	for _, l := range wrap(st.Name, max(1, (st.Width-2*margin)/(6*big))) {
		c.text(margin, y, big, l, colText)
		y += 9 * big
	}
	y += line / 2
	for _, l := range []string{
		"PHONE STAND-IN, NOT ANDROID",
		fmt.Sprintf("%dX%d  %d DPI", st.Width, st.Height, st.Density),
		st.Now.UTC().Format("2006-01-02 15:04:05 UTC"),
		fmt.Sprintf("APPS: %d  TAPS: %d", st.Packages, len(st.Taps)),
	} {
		c.text(margin, y, scale, l, colDim)
		y += line
	}
	y += line
	c.text(margin, y, scale, "TEXT:", colDim)
	y += line
	for _, l := range wrap(st.Text, cols) {
		c.text(margin, y, scale, l, colText)
		y += line
	}
	y += line
	c.text(margin, y, scale, "KEYS: "+strings.Join(st.Keys, " "), colDim)

	r := max(8, st.Width/40)
	for i, p := range st.Taps {
		col := colTap
		if i == len(st.Taps)-1 {
			col = colLastTap
		}
		c.ring(p.X, p.Y, r, max(2, r/5), col)
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// wrap cuts s into lines of at most n characters (no line when s is empty).
func wrap(s string, n int) []string {
	var out []string
	r := []rune(s)
	for len(r) > 0 {
		k := min(n, len(r))
		out = append(out, string(r[:k]))
		r = r[k:]
	}
	return out
}
