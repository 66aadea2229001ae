package scan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/pcistream/pcistream/internal/pan"
)

const (
	// readBuf is the read buffer: lines up to this size are scanned whole.
	readBuf = 1 << 20
	// overlap is how much of an over-long line is carried into the next
	// window so a PAN split across windows is still seen whole. A PAN with
	// separators is at most 19 digits + 18 separators.
	overlap = 64
)

// maybeGunzip returns a reader of the decompressed stream when r starts with
// the gzip magic bytes, else r itself (buffered). Sniffing content rather
// than trusting a ".gz" suffix catches renamed and Content-Encoding objects.
func maybeGunzip(r io.Reader) (io.Reader, bool, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, false, fmt.Errorf("corrupt gzip stream: %w", err)
		}
		return zr, true, nil
	}
	return br, false, nil
}

// lineScanner finds PANs in a stream and numbers their lines. It reads the
// stream in large chunks and runs the detector once per chunk of whole lines
// (not once per line), counting newlines only up to each match, so clean
// text costs little more than the detector itself. It reuses its buffers.
type lineScanner struct {
	det     *pan.Detector
	buf     []byte
	matches []pan.Match
	unit    unitMatches
}

func newLineScanner(det *pan.Detector) *lineScanner {
	return &lineScanner{det: det, buf: make([]byte, readBuf)}
}

// scan reads r to the end (gunzipping it when it is gzip) and calls hit for
// every PAN with its 1-based line number and occurrence index within the
// line. It reports the bytes it reads to n as it goes, for progress.
func (ls *lineScanner) scan(r io.Reader, n func(int64), hit func(line int64, occ int, m pan.Match)) error {
	zr, _, err := maybeGunzip(r)
	if err != nil {
		return err
	}
	var (
		buf      = ls.buf
		filled   int       // bytes in buf
		skip     int       // leading bytes of buf already covered (left context carried from a cut line)
		line     int64 = 1 // line number at buf[0]
		unitLine int64 = 0 // the line ls.unit counts occurrences for
		eof      bool
	)
	for {
		for filled < len(buf) && !eof {
			k, err := zr.Read(buf[filled:])
			filled += k
			n(int64(k))
			if errors.Is(err, io.EOF) {
				eof = true
			} else if err != nil {
				return err
			}
		}
		data := buf[:filled]
		// Scan data up to cut; carry data[next:] into the next round.
		var cut, next int
		var found []pan.Match
		switch k := pan.SplitPoint(data[skip:]); {
		case eof:
			cut, next = filled, filled
			found = ls.det.Find(ls.matches[:0], data)
		case k > 0:
			// The detector's own split point (also the stream masker's):
			// the PANs before and after it are the same scanned apart, so
			// a card number wrapped across the buffer's last line break,
			// or a base64 token running on past it, is carried whole.
			cut = skip + k
			next = cut
			found = ls.det.Find(ls.matches[:0], data[:cut])
		default:
			// No such point in the whole buffer (one run of digits and
			// escapes). Report matches that start before a boundary moved
			// back to a byte that cannot be inside a card number, and
			// carry that byte along as left context (a letter glued to
			// digits is not a PAN).
			cut = len(data) - overlap
			for k := 0; k < overlap && cut > skip+1 && isPANByte(data[cut-1]); k++ {
				cut--
			}
			next = cut - 1
			found = ls.det.Find(ls.matches[:0], data)
		}
		ls.matches = found
		pos := 0
		for _, m := range found {
			if m.Start < skip || m.Start >= cut {
				continue
			}
			line += int64(bytes.Count(data[pos:m.Start], nl))
			pos = m.Start
			if line != unitLine {
				ls.unit.reset()
				unitLine = line
			}
			hit(line, ls.unit.occurrence(m), m)
		}
		if eof {
			return nil
		}
		line += int64(bytes.Count(data[pos:next], nl))
		filled = copy(buf, data[next:])
		skip = cut - next
	}
}

var nl = []byte{'\n'}

// isPANByte: bytes that can be part of a card number in any encoding the
// detector sees through (digits, separators, escapes and their hex digits,
// character references, non-ASCII digits and spaces).
func isPANByte(c byte) bool {
	switch {
	case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F', c >= 0x80:
		return true
	}
	return strings.IndexByte(" \t\r\n-.:/_+%\\&#;uxX", c) >= 0
}
