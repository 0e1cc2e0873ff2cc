// Package sse reads a server-sent event stream exactly as the WHATWG HTML standard's
// "server-sent events" parsing rules (and so every client that follows them) read it.
//
// Whatever trustgate inspects or rewrites in an upstream's event stream must be the events the
// client will dispatch: a reader that disagrees with the client on where an event ends, or on
// what its data is, lets an event through uninspected. The rules followed here:
//
//   - a line ends at CR, LF or CRLF (a CR at the end of one read and an LF at the start of the
//     next are one line end); a single leading U+FEFF (BOM) of the stream is dropped;
//   - a line starting with ':' is a comment; a line without ':' is a field name with an empty
//     value; otherwise the field name is before the first ':' and the value after it, with one
//     leading space removed;
//   - "data" appends its value to the data buffer (the lines joined with LF), "event" sets the
//     event type, "id" sets the last event ID unless the value contains U+0000, "retry" sets the
//     reconnection time when the value is ASCII digits only; other fields are ignored;
//   - a blank line dispatches the event when at least one data field was seen, and resets the
//     data and the event type either way; an event not ended by a blank line when the stream
//     ends is never dispatched;
//   - bytes that are not UTF-8 become U+FFFD as the WHATWG UTF-8 decoder replaces them.
//
// Reading is bounded: the lines of one event (from the end of the previous blank line) may
// hold at most the reader's MaxEventBytes, and NextContext ends a read when its context does.
// AppendEvent writes an event back (one "data" line per line of its data).
package sse

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// ErrTooLarge: an event's lines exceed the reader's bound. The reader stops there.
var ErrTooLarge = errors.New("server-sent event above the size bound")

// Event is one dispatched event.
type Event struct {
	// Type is the last "event" field's value; "" when the event had none (or an empty one),
	// which clients dispatch as "message".
	Type string
	// Data is the event's data lines joined with LF.
	Data []byte
	// ID is the value of the last valid "id" field between the previous blank line and this
	// event's (HasID false when there was none). LastEventID is the stream's last event ID
	// after this event, which persists across events as the standard says.
	ID          string
	HasID       bool
	LastEventID string
	// Retry is the last valid "retry" field of the event's lines, in milliseconds (HasRetry
	// false when there was none).
	Retry    int64
	HasRetry bool
}

// Name is the event's type as clients dispatch it: "message" when the stream gave none.
func (e Event) Name() string {
	if e.Type == "" {
		return "message"
	}
	return e.Type
}

// Reader reads events from a byte stream. It is not safe for concurrent use.
type Reader struct {
	src     io.Reader
	br      *bufio.Reader
	max     int
	started bool // the leading BOM was looked for
	skipLF  bool // the last line ended with CR: an LF right after it is part of that line end
	lastID  string
	err     error // sticky

	keepRaw bool
	raw     []byte // the bytes read since the previous event's blank line (keepRaw)

	line []byte // the current line, reused
}

// NewReader reads events from r, failing with ErrTooLarge when the lines of one event exceed
// maxEventBytes bytes.
func NewReader(r io.Reader, maxEventBytes int) *Reader {
	return &Reader{src: r, br: bufio.NewReaderSize(r, 64<<10), max: maxEventBytes}
}

// KeepRaw makes the reader keep the bytes of each event as they came, for Raw.
func (r *Reader) KeepRaw() { r.keepRaw = true }

// Raw returns the bytes read for the event Next last returned, from the end of the previous
// event through its blank line (comments and undispatched blank-line groups included); after
// an error, the bytes read since the previous event. It is valid until the next call of Next.
// Concatenated, the Raw of every event and of the final error give back the stream.
func (r *Reader) Raw() []byte { return r.raw }

// LastEventID is the stream's last event ID so far.
func (r *Reader) LastEventID() string { return r.lastID }

// NextContext is Next, ended when ctx is done: the source is closed when it is an io.Closer
// (the reader is then unusable), and the error wraps ctx's error.
func (r *Reader) NextContext(ctx context.Context) (Event, error) {
	if c, ok := r.src.(io.Closer); ok && ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		defer stop()
	}
	if err := ctx.Err(); err != nil {
		return Event{}, err
	}
	ev, err := r.Next()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
		r.err = err
	}
	return ev, err
}

// Next returns the next dispatched event. At the end of the stream it returns io.EOF (an
// unterminated last event is discarded); a failing source's error is returned as it is, and
// ErrTooLarge when an event exceeds the bound. Errors are sticky.
func (r *Reader) Next() (Event, error) {
	r.raw = r.raw[:0]
	if r.err != nil {
		return Event{}, r.err
	}
	if !r.started {
		r.started = true
		if err := r.skipBOM(); err != nil {
			return Event{}, r.fail(err)
		}
	}
	var (
		ev      Event
		data    []byte
		hasData bool
		size    int
	)
	for {
		line, err := r.readLine(r.max - size)
		if err != nil {
			return Event{}, r.fail(err)
		}
		if len(line) == 0 { // blank line: dispatch
			if hasData {
				ev.Data = data
				ev.LastEventID = r.lastID
				return ev, nil
			}
			ev, data, size = Event{}, nil, 0
			continue
		}
		size += len(line)
		if !utf8.Valid(line) {
			line = decodeUTF8(line)
		}
		if line[0] == ':' {
			continue // comment
		}
		name, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			name, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(name) {
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			if data == nil {
				data = []byte{}
			}
			hasData = true
		case "event":
			ev.Type = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				r.lastID = string(value)
				ev.ID, ev.HasID = r.lastID, true
			}
		case "retry":
			if ms, ok := digits(value); ok {
				ev.Retry, ev.HasRetry = ms, true
			}
		}
	}
}

func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

// skipBOM drops one leading UTF-8 BOM, reading no more bytes than needed to tell.
func (r *Reader) skipBOM() error {
	bom := []byte{0xEF, 0xBB, 0xBF}
	for n := 1; n <= len(bom); n++ {
		b, err := r.br.Peek(n)
		if len(b) < n || !bytes.Equal(b, bom[:n]) {
			if len(b) == 0 && err != nil {
				return err
			}
			return nil
		}
	}
	r.capture(bom)
	_, _ = r.br.Discard(len(bom))
	return nil
}

func (r *Reader) capture(b []byte) {
	if r.keepRaw {
		r.raw = append(r.raw, b...)
	}
}

// readLine reads the next line without its line end, failing with ErrTooLarge beyond limit
// bytes. A line cut off by the end of the stream is an error (io.EOF): it is never complete.
func (r *Reader) readLine(limit int) ([]byte, error) {
	r.line = r.line[:0]
	for {
		if r.br.Buffered() == 0 {
			if _, err := r.br.Peek(1); err != nil {
				return nil, err
			}
		}
		buf, _ := r.br.Peek(r.br.Buffered())
		if r.skipLF {
			r.skipLF = false
			if buf[0] == '\n' {
				r.capture(buf[:1])
				_, _ = r.br.Discard(1)
				continue
			}
		}
		end := bytes.IndexByte(buf, '\n')
		scan := buf
		if end >= 0 {
			scan = buf[:end]
		}
		if cr := bytes.IndexByte(scan, '\r'); cr >= 0 {
			end = cr
		}
		if end < 0 {
			if len(r.line)+len(buf) > limit {
				return nil, ErrTooLarge
			}
			r.line = append(r.line, buf...)
			r.capture(buf)
			_, _ = r.br.Discard(len(buf))
			continue
		}
		if len(r.line)+end > limit {
			return nil, ErrTooLarge
		}
		r.line = append(r.line, buf[:end]...)
		r.capture(buf[:end+1])
		r.skipLF = buf[end] == '\r'
		_, _ = r.br.Discard(end + 1)
		return r.line, nil
	}
}

// digits parses a value of ASCII digits only (saturating at the largest int64).
func digits(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		n = 1<<63 - 1
	}
	return n, true
}

// decodeUTF8 replaces what is not UTF-8 in b as the WHATWG UTF-8 decoder does: each maximal
// prefix of a valid sequence, and each other invalid byte, becomes one U+FFFD. Line ends are
// ASCII, so decoding a line at a time is decoding the stream.
func decodeUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+8)
	var (
		cp           rune
		needed, seen int
		lower, upper byte = 0x80, 0xBF
	)
	for i := 0; i < len(b); i++ {
		c := b[i]
		if needed == 0 {
			switch {
			case c < 0x80:
				out = append(out, c)
			case c >= 0xC2 && c <= 0xDF:
				needed, cp = 1, rune(c&0x1F)
			case c >= 0xE0 && c <= 0xEF:
				if c == 0xE0 {
					lower = 0xA0
				} else if c == 0xED {
					upper = 0x9F
				}
				needed, cp = 2, rune(c&0x0F)
			case c >= 0xF0 && c <= 0xF4:
				if c == 0xF0 {
					lower = 0x90
				} else if c == 0xF4 {
					upper = 0x8F
				}
				needed, cp = 3, rune(c&0x07)
			default:
				out = utf8.AppendRune(out, utf8.RuneError)
			}
			continue
		}
		if c < lower || c > upper {
			cp, needed, seen, lower, upper = 0, 0, 0, 0x80, 0xBF
			out = utf8.AppendRune(out, utf8.RuneError)
			i-- // the byte starts over
			continue
		}
		lower, upper = 0x80, 0xBF
		cp = cp<<6 | rune(c&0x3F)
		seen++
		if seen == needed {
			out = utf8.AppendRune(out, cp)
			cp, needed, seen = 0, 0, 0
		}
	}
	if needed != 0 {
		out = utf8.AppendRune(out, utf8.RuneError)
	}
	return out
}

// AppendEvent appends ev as the stream's bytes to dst: its "event", "id" and "retry" fields
// when set, one "data" line per line of its data (a line ends at CR, LF or CRLF), and the
// blank line that dispatches it. Read back, it is ev (Type, ID, Retry and Data). Type and ID
// must not contain line ends.
func AppendEvent(dst []byte, ev Event) []byte {
	if ev.Type != "" {
		dst = append(append(append(dst, "event: "...), ev.Type...), '\n')
	}
	if ev.HasID {
		dst = append(append(append(dst, "id: "...), ev.ID...), '\n')
	}
	if ev.HasRetry {
		dst = append(strconv.AppendInt(append(dst, "retry: "...), ev.Retry, 10), '\n')
	}
	data := ev.Data
	for {
		end := bytes.IndexAny(data, "\r\n")
		if end < 0 {
			dst = append(append(append(dst, "data: "...), data...), '\n')
			break
		}
		dst = append(append(append(dst, "data: "...), data[:end]...), '\n')
		if data[end] == '\r' && end+1 < len(data) && data[end+1] == '\n' {
			end++
		}
		data = data[end+1:]
	}
	return append(dst, '\n')
}
