package pan

// Nested encodings: a PAN inside the hex of its ASCII text ("3431313120..."
// in SQL 0x/X'' literals, PostgreSQL bytea, hex dumps without spaces) or
// inside base64 (JWT payloads, Basic auth, base64 JSON in logs). The region
// is decoded into a small buffer, scanned by an inner scanner, and its
// matches are mapped back to the bytes as written; Mask re-encodes the
// masked plaintext, so the region keeps its length and stays valid hex or
// base64.

const (
	maxSub   = 8   // matches of one decoded region held at a time
	maxPlain = 384 // bytes of one decoded region
	// overlap is how many decoded bytes a window shares with the one
	// before it in a longer region, so a PAN with separators, or with
	// escaped digits, that straddles a window's end is whole in the next.
	overlap = 96
)

// hexRun looks at a plain digit run b[p:e] too long to be a PAN: when its
// digits read as hex pairs of ASCII digits ("3431...": twelve or more pairs
// starting with '3' at one alignment), the hex token around it is decoded
// and scanned. It reports whether the region holds a PAN (then s.sub holds
// the matches and s.subEnd where the scan goes on).
func (s *scanner) hexRun(p, e int) bool {
	if s.inner || e-p < 2*MinDigits {
		return false
	}
	b := s.b
	a := -1
	for x := p; x <= p+1 && a < 0; x++ {
		cnt := 0
		for q := x; q+1 < e; q += 2 {
			if b[q] == '3' {
				cnt++
			}
		}
		if cnt >= MinDigits {
			a = x
		}
	}
	if a < 0 {
		return false
	}
	// The hex token around the run, in pairs aligned with a, from s.i on,
	// decoded a window at a time until one holds a PAN or the windows
	// cover the run (a PAN of hex is inside one digit run).
	start := a
	for start-2 >= s.i && a-start < maxPlain && isHex(b[start-1]) && isHex(b[start-2]) {
		start -= 2
	}
	var buf [maxPlain]byte
	for {
		end := start
		for end+2 <= len(b) && (end-start)/2 < maxPlain && isHex(b[end]) && isHex(b[end+1]) {
			end += 2
		}
		more := end+2 <= len(b) && isHex(b[end]) && isHex(b[end+1])
		n := hexDecode(buf[:], b[start:end])
		if s.subScan(buf[:n], start, end, 2*overlap, more, EncHexASCII) {
			return true
		}
		if !more || end >= e {
			return false
		}
		start = end - 2*overlap
	}
}

// byteaHex reports whether the escape at p starts "\\x3431..." (PostgreSQL
// bytea hex output, its backslash possibly escaped) whose hex holds a PAN.
func (s *scanner) byteaHex(p int) bool {
	b := s.b
	q := p + 1
	for q < len(b) && b[q] == '\\' {
		q++
	}
	if q+1 >= len(b) || b[q] != 'x' || !isDigit(b[q+1]) {
		return false
	}
	return s.hexRun(q+1, q+1+digitRun(b, q+1))
}

// hexDecode decodes the hex pairs of src (all hex digits, even length)
// into dst and returns the length.
func hexDecode(dst, src []byte) int {
	n := 0
	for q := 0; q+1 < len(src); q += 2 {
		hi, _ := unhex(src[q])
		lo, _ := unhex(src[q+1])
		dst[n] = hi<<4 | lo
		n++
	}
	return n
}

// b64Val maps the characters of both base64 alphabets (standard and URL)
// to their values; -1 for others.
var b64Val = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < 64; i++ {
		t[std[i]] = int8(i)
	}
	t['-'], t['_'] = 62, 63
	return t
}()

// b64Digit: bit k of b64Digit[c] says c can be character k of the base64
// of three ASCII digits: [M-O][DTjz][AEIMQUYcgk][w-z0-5].
var b64Digit = func() (t [256]uint8) {
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for v := 0; v < 1000; v++ {
		x := uint32('0'+v/100)<<16 | uint32('0'+v/10%10)<<8 | uint32('0'+v%10)
		for k := 0; k < 4; k++ {
			t[std[x>>(18-6*k)&63]] |= 1 << k
		}
	}
	return t
}()

// b64DigitGroup reports whether the four characters at x are the base64
// of three ASCII digits.
func b64DigitGroup(b []byte, x int) bool {
	return x >= 0 && x+4 <= len(b) && b64Digit[b[x]]&1 != 0 && b64Digit[b[x+1]]&2 != 0 &&
		b64Digit[b[x+2]]&4 != 0 && b64Digit[b[x+3]]&8 != 0
}

// b64Quad reports whether the four characters at x are base64.
func b64Quad(b []byte, x int) bool {
	return b64Val[b[x]]|b64Val[b[x+1]]|b64Val[b[x+2]]|b64Val[b[x+3]] >= 0
}

// b64U16Group reports whether the eight characters at x are the base64
// of two ASCII digits in UTF-16LE between NULs (digit, 0, digit; 0, digit,
// 0: [M-O][AQgw]A[w-z0-5] AD[AEIMQUYcgk]A), as PowerShell's
// -EncodedCommand and .NET write text.
func b64U16Group(b []byte, x int) bool {
	if x < 0 || x+8 > len(b) {
		return false
	}
	c1 := b[x+1]
	return b64Digit[b[x]]&1 != 0 && (c1 == 'A' || c1 == 'Q' || c1 == 'g' || c1 == 'w') && b[x+2] == 'A' &&
		b64Digit[b[x+3]]&8 != 0 && b[x+4] == 'A' && b[x+5] == 'D' && b64Digit[b[x+6]]&4 != 0 && b[x+7] == 'A'
}

// b64Sig marks, for the base64 signal of the block filter (see
// candidates), the first characters of the base64 of three ASCII digits.
func b64Sig(c byte) bool { return c >= 'M' && c <= 'O' }

// b64Signal returns the base64 signal of a block from its mask mo of
// b64Sig bytes: bit k is set where characters k, k+4 and k+8 all start
// groups that may encode digits (three groups in a row: twelve base64
// characters of which every fourth is M, N or O), or where two do at the
// block's first or last bytes and the third may be in the block next to
// it. The same at k, k+8 and k+16 is the signal of digits in UTF-16LE
// (see b64U16Group: every other group starts with M, N or O).
func b64Signal(mo uint64) uint64 {
	p := mo & (mo >> 4)
	q := mo & (mo >> 8)
	return p&(p>>4|0x0F0000000000000F) | q&(q>>8|0x00FF0000000000FF)
}

// base64At is called at a base64 signal p (see b64Signal): when a group
// of three digits starts at p, p+4, p+8 or p-4, or two of UTF-16LE
// digits at p or p+8, the base64 token around it is decoded, aligned with
// that group, and scanned. It reports whether
// the region holds a PAN (then s.sub holds the matches and s.subEnd where
// the scan goes on).
func (s *scanner) base64At(p int) bool {
	if s.inner || p < s.b64Skip {
		return false
	}
	b := s.b
	a := -1
	for _, x := range [...]int{p, p + 4, p + 8, p - 4} {
		if x >= s.floor && b64DigitGroup(b, x) {
			a = x
			break
		}
	}
	for _, x := range [...]int{p, p + 8} {
		if a < 0 && x >= s.i && b64U16Group(b, x) {
			a = x
		}
	}
	if a < 0 {
		return false
	}
	// The token, from at most maxPlain characters before a, back past
	// where the scan is (candidates that led nowhere inside the token,
	// digits of its own or a group holding a PAN's first digits and the
	// byte before them, move s.i on, and a PAN there without a base64
	// signal of its own would be skipped or cut), but not past the end of
	// the last match, whose bytes Mask has rewritten.
	lo := s.floor
	start := a
	for start-4 >= lo && a-start < maxPlain && b64Quad(b, start-4) {
		start -= 4
	}
	return s.b64Windows(start, lo)
}

// b64Windows decodes the base64 token on from start a window at a time
// until one holds a PAN or the token ends. A window does not start inside
// a number (see b64Back; lo bounds it). When it goes on after the
// matches kept (more PANs than sub holds, or windows after the one that
// held them), b64Skip is set to -1-subEnd: next calls subMore once they
// are returned, and the token is decoded on from subEnd, whether or not a
// base64 signal (see b64Signal) comes after it (a PAN grouped
// "3782-822463-10005" has none of its own).
func (s *scanner) b64Windows(start, lo int) bool {
	b := s.b
	var buf [maxPlain]byte
	for {
		start = b64Back(b, start, lo)
		end := start
		for end+4 <= len(b) && (end-start)/4*3+6 <= maxPlain && b64Quad(b, end) {
			end += 4
		}
		more := end+4 <= len(b) && b64Quad(b, end)
		if !more {
			// A last, partial group of two or three characters ends the token.
			k := 0
			for k < 3 && end+k < len(b) && b64Val[b[end+k]] >= 0 {
				k++
			}
			if k >= 2 && (end+k == len(b) || b64Val[b[end+k]] < 0) {
				end += k
			}
		}
		n := b64Decode(buf[:], b[start:end])
		if s.subScan(buf[:n], start, end, overlap/3*4, more, EncBase64) {
			s.b64Skip = s.subEnd
			if s.subEnd < end || more {
				s.b64Skip = -1 - s.subEnd
			}
			return true
		}
		if !more {
			s.b64Skip = end
			return false
		}
		start = end - overlap/3*4
	}
}

// b64Back moves a window start back over whole groups of the token while
// the group before it ends in a digit or a separator, so that the window
// does not start inside a number (the tail of a longer number may read as
// a PAN, and a window start moved by masking would then find it), by at
// most 96 characters and not before lo.
func b64Back(b []byte, start, lo int) int {
	for k := 0; k < 96 && start-4 >= lo && b64Quad(b, start-4); k += 4 {
		var g [3]byte
		b64Decode(g[:], b[start-4:start])
		if c := g[2]; !isDigit(c) && !asciiSep[c] {
			break
		}
		start -= 4
	}
	return start
}

// subMore is called by next when the matches of a decoded region are all
// returned (subN > 0): when the region is a base64 token that goes on (see
// b64Windows), it decodes it on from where they stopped and reports
// whether sub holds more matches (from subK = 0; the scan then goes on at
// the new subEnd).
func (s *scanner) subMore() bool {
	last := s.sub[s.subN-1].End
	s.subN = 0
	if s.b64Skip >= 0 {
		return false
	}
	from := -1 - s.b64Skip
	s.b64Skip = from
	if !s.b64Windows(from, last) {
		return false
	}
	s.i, s.subK = s.subEnd, 0
	return true
}

// b64Decode decodes src (base64 characters of either alphabet, no
// padding; a last group of two or three characters) into dst and returns
// the length.
func b64Decode(dst, src []byte) int {
	n := 0
	for q := 0; q < len(src); q += 4 {
		var v uint32
		k := min(4, len(src)-q)
		for j := 0; j < k; j++ {
			v |= uint32(b64Val[src[q+j]]) << (18 - 6*j)
		}
		for j := 0; j < k-1; j++ {
			dst[n] = byte(v >> (16 - 8*j))
			n++
		}
	}
	return n
}

// b64Encode appends the base64 of src to dst, in the URL alphabet if url,
// without padding.
func b64Encode(dst, src []byte, url bool) []byte {
	alpha := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	if url {
		alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	}
	for q := 0; q < len(src); q += 3 {
		k := min(3, len(src)-q)
		var v uint32
		for j := 0; j < k; j++ {
			v |= uint32(src[q+j]) << (16 - 8*j)
		}
		for j := 0; j <= k; j++ {
			dst = append(dst, alpha[v>>(18-6*j)&63])
		}
	}
	return dst
}

// subMatch returns the first match of the decoded region subScan found
// and moves the scan past the region; next returns the others first.
func (s *scanner) subMatch(m *Match) bool {
	s.i = s.subEnd
	*m = s.sub[0]
	s.subK = 1
	s.floor = m.End
	return true
}

// subScan scans the decoded region plain (written as b[start:end] in
// encoding enc) and keeps up to maxSub of its matches, mapped back to b.
// more says the region goes on after end, then the last ov characters
// (whole groups) are scanned again with what follows. subEnd is where the
// scan goes on: where the first match not kept starts, or after the
// region (its last ov characters when more).
func (s *scanner) subScan(plain []byte, start, end, ov int, more bool, enc Encoding) bool {
	in := scanner{d: s.d, b: plain, bs: noBlock, inner: true}
	var m Match
	s.subN, s.subK = 0, 0
	s.subEnd = end
	if more {
		s.subEnd = end - ov
	}
	for in.next(&m) {
		is, ie := m.Start, m.End
		if enc == EncHexASCII {
			m.Start, m.End = start+2*is, start+2*ie
		} else {
			g0, g1 := is/3, (ie+2)/3
			m.Start, m.End = start+4*g0, min(start+4*g1, end)
			m.sub0, m.sub1 = int32(is-3*g0), int32(ie-3*g0)
		}
		m.Encoding |= enc
		if s.subN > 0 && m.Start < s.sub[s.subN-1].End {
			// Two PANs in one base64 group: one finding, all masked.
			last := &s.sub[s.subN-1]
			last.End, last.sub1 = m.End, int32(ie)-int32(last.Start-start)/4*3
			last.Encoding |= m.Encoding
			last.adj |= adjMerged | m.adj
			continue
		}
		if s.subN == maxSub {
			// More than sub holds: the rest is scanned again from the
			// start of this one (past the last kept: it was not merged).
			s.subEnd = m.Start
			return true
		}
		s.sub[s.subN] = m
		s.subN++
	}
	if s.subN == 0 {
		return false
	}
	s.subEnd = max(s.subEnd, s.sub[s.subN-1].End)
	return true
}

// appendMaskedNested appends the match m of b, a PAN inside hex or base64,
// masked under p: the region is decoded, masked, and encoded again with
// the same length.
func appendMaskedNested(dst, b []byte, m *Match, p Policy) []byte {
	var plain, masked [maxPlain]byte
	span := b[m.Start:m.End]
	in := *m
	in.Encoding &^= EncHexASCII | EncBase64
	var n int
	if m.Encoding&EncHexASCII != 0 {
		n = hexDecode(plain[:], span)
		in.Start, in.End = 0, n
	} else {
		n = b64Decode(plain[:], span)
		in.Start, in.End = int(m.sub0), int(m.sub1)
	}
	if m.adj&adjMerged != 0 {
		// Several PANs: every digit between the first and the last.
		in.adj = adjBefore | adjAfter
		in.Digits = 0
		for q := in.Start; q < in.End; {
			_, w, _ := digitAt(plain[:n], q)
			if w == 0 {
				q++
				continue
			}
			in.Digits++
			q += w
		}
	}
	head, tail := Visible(in.Digits, p)
	if in.adj&adjBefore != 0 {
		head = 0
	}
	if in.adj&adjAfter != 0 {
		tail = 0
	}
	out := append(masked[:0], plain[:in.Start]...)
	out = appendMaskedFlat(out, plain[:n], &in, head, tail)
	out = append(out, plain[in.End:n]...)
	if m.Encoding&EncHexASCII != 0 {
		digits := "0123456789abcdef"
		for _, c := range span {
			if c >= 'A' && c <= 'F' {
				digits = "0123456789ABCDEF"
				break
			}
		}
		for _, c := range out {
			dst = append(dst, digits[c>>4], digits[c&15])
		}
		return dst
	}
	url := false
	for _, c := range span {
		url = url || c == '-' || c == '_'
	}
	return b64Encode(dst, out, url)
}
