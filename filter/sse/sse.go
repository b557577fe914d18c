// Package sse parses Server-Sent Events (text/event-stream) incrementally, as
// the WHATWG HTML specification ("Parsing an event stream") says, from body
// chunks cut anywhere: inside a line, between "\r" and "\n", inside the
// leading byte order mark.
//
// The parser is a value type with no host calls and no dependency on fmt or
// os, so it runs inside the wasm filter. It does not hold the stream: memory
// is bounded by the largest event (capped by Parser.MaxEventSize) plus the
// largest chunk, and a long stream of small events allocates nothing once the
// buffers have grown to their working size.
package sse

import "bytes"

// DefaultMaxEventSize is the cap on one event used when Parser.MaxEventSize is
// zero: 1 MiB.
const DefaultMaxEventSize = 1 << 20

// Event is one dispatched SSE event.
type Event struct {
	// Name is the value of the event's last "event:" field; "" when it had
	// none (the spec then calls the event "message").
	Name string
	// Data is the event's data lines joined with "\n" (per the WHATWG spec). It
	// aliases parser memory valid until the next Feed or Reset; copy it to keep
	// it.
	Data []byte
	// ID is the stream's last event ID when the event was dispatched: per the
	// spec it is set by "id:" fields (those holding a NUL byte are ignored) and
	// kept for the following events until another "id:" field changes it.
	ID string
}

// Parser turns a byte stream into events. The zero value is ready and uses
// DefaultMaxEventSize. A Parser is not safe for concurrent use; it is meant
// to live in per-request state.
type Parser struct {
	// MaxEventSize caps an event: an event whose Data would be longer, or whose
	// "event:" or "id:" value is longer, is dropped (not dispatched) and counted
	// by Dropped, and the parser skips to the blank line that ends it. Zero
	// means DefaultMaxEventSize. Set it before the first Feed.
	MaxEventSize int

	events []Event
	// data holds the data of this Feed's dispatched events, then the current
	// event's data lines, each followed by "\n", from evStart on.
	data    []byte
	evStart int
	name    []byte // the current event's "event:" value
	idBuf   []byte // the "id:" value being read
	id      string // the last event ID
	// names caches recent event names, so a stream whose events repeat a few
	// names does not allocate a string per event.
	names    [4]string
	nextName int

	state    lineState
	target   field
	fieldLen int     // bytes of the current line's field name so far
	field    [5]byte // its first bytes: enough for "event", the longest known field
	skipLF   bool    // the last chunk ended with "\r": a leading "\n" ends that line
	bom      int     // bytes of the leading byte order mark matched so far
	begun    bool    // the byte order mark question is settled
	inEvent  bool    // field lines have been read since the last blank line
	dropping bool    // the current event is over MaxEventSize
	dropped  int
}

// lineState says where the parser stands in the current line.
type lineState uint8

const (
	atLineStart  lineState = iota // nothing of the current line read yet
	inField                       // reading the field name
	atValueStart                  // just after the colon: one space may follow
	inValue                       // reading the value
	inIgnored                     // a comment line, or a line whose value is not kept
)

// field is what the current line's value is for.
type field uint8

const (
	fieldIgnored field = iota
	fieldData
	fieldEvent
	fieldID
)

// utf8BOM is the byte order mark the spec says to skip at the start of a stream.
const utf8BOM = "\xEF\xBB\xBF"

// Feed parses the next chunk of the stream and returns the events it
// completed, in stream order. The returned slice and the events' Data are
// reused by the next Feed. A partial line or event is kept and completed by the
// following chunks; the result does not depend on where the stream was cut.
func (p *Parser) Feed(chunk []byte) []Event {
	p.events = p.events[:0]
	if p.evStart > 0 {
		// The events handed out by the previous Feed are no longer valid: keep
		// only the current event's data, written during that Feed (at most one
		// chunk's worth, so the copy never grows with the event).
		n := copy(p.data, p.data[p.evStart:])
		p.data = p.data[:n]
		p.evStart = 0
	}
	if !p.begun {
		for p.bom < len(utf8BOM) {
			if len(chunk) == 0 {
				return p.events // undecided: a prefix of the mark so far
			}
			if chunk[0] != utf8BOM[p.bom] {
				break
			}
			p.bom++
			chunk = chunk[1:]
		}
		p.begun = true
		if p.bom < len(utf8BOM) {
			p.scan([]byte(utf8BOM[:p.bom])) // not a mark after all: those bytes are text
		}
	}
	p.scan(chunk)
	return p.events
}

// Pending reports whether the stream so far ends inside a line or inside an
// event (field lines not yet ended by a blank line), or inside a possible
// byte order mark: if the stream ends here, it was cut in the middle and the
// pending event is lost. Comment lines alone do not make an event pending.
func (p *Parser) Pending() bool {
	return p.state != atLineStart || p.inEvent || !p.begun && p.bom > 0
}

// Dropped returns how many events were dropped for exceeding MaxEventSize,
// counted when the limit is crossed.
func (p *Parser) Dropped() int { return p.dropped }

// Reset makes p ready for a new stream, keeping MaxEventSize and, unless
// they grew large, its buffers.
func (p *Parser) Reset() {
	const keep = 64 << 10
	maxSize, events, data, name, idBuf := p.MaxEventSize, p.events[:0], p.data[:0], p.name[:0], p.idBuf[:0]
	if cap(data) > keep {
		data = nil
	}
	if cap(events) > keep/64 {
		events = nil
	}
	*p = Parser{MaxEventSize: maxSize, events: events, data: data, name: name, idBuf: idBuf}
}

func (p *Parser) max() int {
	if p.MaxEventSize > 0 {
		return p.MaxEventSize
	}
	return DefaultMaxEventSize
}

// scan runs the line state machine over b.
func (p *Parser) scan(b []byte) {
	for len(b) > 0 {
		if p.skipLF {
			p.skipLF = false
			if b[0] == '\n' {
				b = b[1:]
				continue
			}
		}
		switch p.state {
		case atLineStart:
			switch b[0] {
			case '\n', '\r':
				p.blankLine()
				b = p.endLine(b, 0)
				continue
			case ':':
				p.state = inIgnored // a comment
				b = b[1:]
				continue
			}
			p.state, p.fieldLen, p.inEvent = inField, 0, true
		case inField:
			k := 0
			for k < len(b) && b[k] != ':' && b[k] != '\n' && b[k] != '\r' {
				if p.fieldLen < len(p.field) {
					p.field[p.fieldLen] = b[k]
				}
				p.fieldLen++
				k++
			}
			if k == len(b) {
				return
			}
			p.startValue()
			if b[k] == ':' {
				p.state = atValueStart
				b = b[k+1:]
				continue
			}
			p.endValue() // a line without a colon: the value is empty
			b = p.endLine(b, k)
		case atValueStart:
			p.state = inValue
			if b[0] == ' ' {
				b = b[1:]
			}
		case inValue:
			k := lineEnd(b)
			p.appendValue(b[:k])
			if k == len(b) {
				return
			}
			p.endValue()
			b = p.endLine(b, k)
		case inIgnored:
			k := lineEnd(b)
			if k == len(b) {
				return
			}
			b = p.endLine(b, k)
		}
	}
}

// lineEnd returns the index of the first '\r' or '\n' in b, or len(b).
func lineEnd(b []byte) int {
	k := bytes.IndexByte(b, '\n')
	if k < 0 {
		k = len(b)
	}
	if r := bytes.IndexByte(b[:k], '\r'); r >= 0 {
		return r
	}
	return k
}

// endLine consumes the line terminator at b[k] and returns the rest of b.
func (p *Parser) endLine(b []byte, k int) []byte {
	p.state = atLineStart
	if b[k] == '\r' {
		if k+1 == len(b) {
			p.skipLF = true // a "\n" opening the next chunk belongs to this "\r"
		} else if b[k+1] == '\n' {
			return b[k+2:]
		}
	}
	return b[k+1:]
}

// startValue chooses what the value of the field just read is for.
func (p *Parser) startValue() {
	p.target = fieldIgnored
	if p.dropping || p.fieldLen > len(p.field) {
		return
	}
	switch string(p.field[:p.fieldLen]) {
	case "data":
		p.target = fieldData
	case "event":
		p.target = fieldEvent
		p.name = p.name[:0]
	case "id":
		p.target = fieldID
		p.idBuf = p.idBuf[:0]
	}
	// "retry" and unknown fields are ignored.
}

// appendValue adds v to the value being read.
func (p *Parser) appendValue(v []byte) {
	switch p.target {
	case fieldData:
		if len(p.data)-p.evStart+len(v) > p.max() {
			p.drop()
			return
		}
		p.data = append(p.data, v...)
	case fieldEvent:
		if len(p.name)+len(v) > p.max() {
			p.drop()
			return
		}
		p.name = append(p.name, v...)
	case fieldID:
		if len(p.idBuf)+len(v) > p.max() {
			p.drop()
			return
		}
		p.idBuf = append(p.idBuf, v...)
	}
}

// endValue applies the field whose line just ended.
func (p *Parser) endValue() {
	switch p.target {
	case fieldData:
		// The buffer keeps a "\n" after each line; the one after the last line
		// is not part of Data, so Data stays within the limit while the
		// buffer, before this "\n", does.
		if len(p.data)-p.evStart > p.max() {
			p.drop()
			return
		}
		p.data = append(p.data, '\n')
	case fieldID:
		if bytes.IndexByte(p.idBuf, 0) < 0 && string(p.idBuf) != p.id {
			p.id = string(p.idBuf)
		}
	}
	p.target = fieldIgnored
}

// drop abandons the current event: its fields are forgotten and the rest of
// its lines are skipped.
func (p *Parser) drop() {
	p.dropping = true
	p.dropped++
	p.target = fieldIgnored
	p.data = p.data[:p.evStart]
	p.name = p.name[:0]
}

// blankLine ends the current event, dispatching it unless it has no data or
// was dropped.
func (p *Parser) blankLine() {
	if !p.dropping && len(p.data) > p.evStart {
		end := len(p.data) - 1 // without the last line's "\n"
		p.events = append(p.events, Event{
			Name: p.intern(p.name),
			Data: p.data[p.evStart:end:end],
			ID:   p.id,
		})
		p.evStart = len(p.data)
	}
	p.data = p.data[:p.evStart]
	p.name = p.name[:0]
	p.dropping, p.inEvent = false, false
}

// intern returns name as a string, reusing a recent equal one.
func (p *Parser) intern(name []byte) string {
	if len(name) == 0 {
		return ""
	}
	for _, s := range p.names {
		if s == string(name) {
			return s
		}
	}
	s := string(name)
	p.names[p.nextName] = s
	p.nextName = (p.nextName + 1) % len(p.names)
	return s
}
