package pan

import (
	"errors"
	"io"
)

// neutral bytes can never be part of a PAN, of its digits' or separators'
// encodings, or of the context the detector looks at around a digit run
// (letters for hex strings and IBANs, '+' for phone numbers, '.' for
// fractions, '#' and ';' of character references; ',' ';' '|' separate
// digit groups). The detector's
// decisions on one side of a neutral byte never depend on the other side.
var neutralTable = func() (t [256]bool) {
	// Not '{' '}' (they delimit "\u{34}" escapes), quotes, '<' '>' or
	// '=' (quotes, tags and quoted-printable soft line breaks can split
	// a number: "4111","1111", 4111<b>1111</b>, 11=\r\n11).
	for _, c := range "()[]!?$@^~`" {
		t[c] = true
	}
	return t
}()

func neutral(c byte) bool { return neutralTable[c] }

// wordEnd: a space after two lower-case letters ("... the card ") also
// splits text safely: no digit run, escape, hex string, IBAN (upper case)
// or base64 token spans it, and the detector's look at the context of a
// number never crosses a space after letters. (A cut between two letters
// would not be safe: base64 tokens can hold any letters, and the cut would
// change their decoding.)
func wordEnd(b []byte, k int) bool {
	return k >= 3 && b[k-1] == ' ' && b[k-2]-'a' < 26 && b[k-3]-'a' < 26 && !inEntityName(b, k-1)
}

// inEntityName reports whether the letters ending at b[k-1] follow a '&'
// (a named character reference such as "&nbsp;" that must not be cut).
func inEntityName(b []byte, k int) bool {
	for p := k - 1; p >= 0 && k-p <= 20; p-- {
		if b[p] == '&' {
			return true
		}
		if !isLetter(b[p]) {
			return false
		}
	}
	return false
}

// SplitPoint returns the largest k (0 < k <= len(b)) such that the PANs in
// b[:k] and in whatever follows k are the same whether the text is scanned
// in one piece or as b[:k] and the rest separately, whatever the bytes after
// b are; 0 if b has no such point. Streaming code masks b[:k], keeps b[k:]
// and appends more input to it. A line break is a split point when the line
// does not end in a digit or a separator (a card number may be wrapped
// across lines, so "4111 1111\n1111 1111" is held until the next line).
func SplitPoint(b []byte) int {
	for k := len(b); k > 0; k-- {
		c := b[k-1]
		if (neutral(c) || (c == '=' && !qpMay(b, k-1))) && !inTag(b, k) && !csiOpen(b, k) {
			// '=' followed by neither a line break nor the hex of a
			// non-ASCII byte is no quoted-printable escape (qpMay).
			return k
		}
		if c == '\n' {
			q := k - 1
			if q > 0 && b[q-1] == '\r' {
				q--
			}
			if q == 0 || neutral(b[q-1]) || (isLetter(b[q-1]) && !inEntityName(b, q)) {
				return k
			}
		}
		if wordEnd(b, k) && !inTag(b, k) {
			return k
		}
	}
	return 0
}

// inTag reports whether k may be inside an HTML or XML tag (see tagAt): a
// '<', plain or escaped, stands less than maxTag bytes before k with no
// '>', line break or digit after it. A tag can be a gap between digit
// groups, so nothing inside it is a split point.
func inTag(b []byte, k int) bool {
	for p := k - 1; p >= 0 && k-p <= maxTag; p-- {
		c := b[p]
		switch {
		case c == '<':
			return true
		case c == '>' || c == '\n' || isDigit(c):
			return false
		case c == '%' || c == '\\' || c == '&':
			if r, w, _ := decode(b, p); w > 0 && p+w <= k {
				switch r {
				case '<':
					return true
				case '>':
					return false
				}
			}
		}
	}
	return false
}

// StreamOpt configures MaskStream.
type StreamOpt func(*streamCfg)

type streamCfg struct {
	readSize, maxBuffer int
}

// MaxBuffer bounds the memory MaskStream holds while waiting for a point
// where it can cut the input safely (default 1 MiB). Input that goes on
// longer than that without one (megabytes of digits and spaces, say) is
// not passed through raw: every digit up to the next safe point is masked.
func MaxBuffer(n int) StreamOpt {
	return func(c *streamCfg) {
		if n > 0 {
			c.maxBuffer = n
		}
	}
}

var errNilArg = errors.New("pan: nil reader or writer")

// StreamStats reports what MaskStream did.
type StreamStats struct {
	Bytes      int64 // bytes copied
	PANs       int   // PANs masked
	FailClosed int64 // bytes whose digits were all masked because no safe cut point was found within MaxBuffer
}

// MaskStream copies src to dst with every PAN masked under p, holding at
// most MaxBuffer bytes. It writes as soon as it has a safe cut point, so it
// suits pipes and log shippers (each line is written when its newline
// arrives). The output is byte for byte what Mask would give on the whole
// input, except in the fail-closed case described at MaxBuffer.
func (d *Detector) MaskStream(dst io.Writer, src io.Reader, p Policy, opts ...StreamOpt) (StreamStats, error) {
	var st StreamStats
	if dst == nil || src == nil {
		return st, errNilArg
	}
	c := streamCfg{readSize: 64 << 10, maxBuffer: 1 << 20}
	for _, o := range opts {
		o(&c)
	}
	if c.readSize > c.maxBuffer {
		c.readSize = c.maxBuffer
	}
	buf := make([]byte, 0, c.readSize)
	var out []byte
	failClosed := false
	emit := func(seg []byte, starAll bool) error {
		if starAll {
			out = append(out[:0], seg...)
			for i, ch := range out {
				if isDigit(ch) {
					out[i] = '*'
				}
			}
			// Escaped and non-ASCII digits are masked as written.
			for i := 0; i < len(out); {
				if !interest[out[i]] {
					i++
					continue
				}
				if _, w, _ := digitAt(out, i); w > 0 {
					copy(out[i:], appendStar(nil, out[i:i+w]))
					i += w
					continue
				}
				i += skipWidth(out, i)
			}
			st.FailClosed += int64(len(seg))
		} else {
			var n int
			out, n = d.Mask(out[:0], seg, p)
			st.PANs += n
		}
		st.Bytes += int64(len(seg))
		_, err := dst.Write(out)
		return err
	}
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= c.maxBuffer {
				// No safe point in a full buffer: fail closed.
				if err := emit(buf, true); err != nil {
					return st, err
				}
				buf = buf[:0]
				failClosed = true
			} else {
				nb := make([]byte, len(buf), min(2*cap(buf), c.maxBuffer))
				copy(nb, buf)
				buf = nb
			}
		}
		n, rerr := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if rerr != nil && rerr != io.EOF {
			// Do not lose what was read: mask it as if the input ended.
			if err := emit(buf, failClosed); err != nil {
				return st, err
			}
			return st, rerr
		}
		if rerr == io.EOF {
			return st, emit(buf, failClosed)
		}
		if n == 0 {
			continue
		}
		k := SplitPoint(buf)
		if k == 0 {
			continue
		}
		if err := emit(buf[:k], failClosed); err != nil {
			return st, err
		}
		failClosed = false
		buf = buf[:copy(buf, buf[k:])]
	}
}
