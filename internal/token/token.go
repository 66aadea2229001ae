package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// Alphabet is the 32-symbol, letters-only alphabet of token bodies. It has no
// digits (a PAN detector can never see a digit run in a token), no vowels (no
// accidental words) and no l/I/O look-alikes.
const Alphabet = "bcdfghjkmnpqrstvwxyzBCDFGHJKMNPQ"

// bodyLen is the number of symbols in a token body: 32 x 5 bits = 160 bits of
// the HMAC output, far beyond any collision concern for card populations.
const bodyLen = 32

// Prefix starts every token.
const Prefix = "tok_v"

// hmacDomain separates token HMACs from any other use of the key.
var hmacDomain = []byte("pcistream/token/v1\x00")

// ErrInvalidToken is returned by ParseToken for strings that are not tokens.
var ErrInvalidToken = errors.New("not a pcistream token (tok_v<N>_<32 letters>)")

// Tokenize returns the token of pan under the current key version, and that
// version. pan must be the PAN's digits only; the caller validates it.
func (k *Keyring) Tokenize(pan []byte) (string, uint32, error) {
	t, err := k.TokenizeVersion(k.current, pan)
	return t, k.current, err
}

// TokenizeVersion returns the token of pan under key version v: HMAC-SHA-256
// keyed by that version's secret, truncated to 160 bits and rendered in
// Alphabet. The same PAN and version always give the same token.
func (k *Keyring) TokenizeVersion(v uint32, pan []byte) (string, error) {
	kv, err := k.version(v)
	if err != nil {
		return "", err
	}
	if len(pan) == 0 {
		return "", errors.New("tokenize: empty PAN")
	}
	if kv.hmac == nil {
		return "", ErrNoTokenKey
	}
	m := k.mac(kv)
	m.h.Write(hmacDomain)
	m.h.Write(pan)
	var sum [sha256.Size]byte
	tok := render(v, m.h.Sum(sum[:0]))
	k.putMAC(kv, m)
	return tok, nil
}

// pooledMAC is an HMAC-SHA-256 state keyed by key, kept for reuse:
// hmac.New hashes the key into its pads (two hash blocks) and allocates
// four objects, on every token.
type pooledMAC struct {
	h   hash.Hash
	key []byte
}

// mac returns a fresh HMAC keyed by kv's secret, from kv's pool when it has
// one made with the same key.
func (k *Keyring) mac(kv *keyVersion) *pooledMAC {
	if p, ok := k.macs.Load(kv); ok {
		if m, ok := p.(*sync.Pool).Get().(*pooledMAC); ok && sameSlice(m.key, kv.hmac) {
			m.h.Reset()
			return m
		}
	}
	return &pooledMAC{h: hmac.New(sha256.New, kv.hmac), key: kv.hmac}
}

func (k *Keyring) putMAC(kv *keyVersion, m *pooledMAC) {
	p, _ := k.macs.LoadOrStore(kv, new(sync.Pool))
	p.(*sync.Pool).Put(m)
}

// sameSlice reports whether a and b are the same memory (the same key, not
// merely equal bytes: a key replaced in place is not reused).
func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}

// render formats tok_v<N>_<body> from the first 20 bytes of mac.
func render(v uint32, mac []byte) string {
	var sb strings.Builder
	sb.Grow(len(Prefix) + 11 + bodyLen)
	sb.WriteString(Prefix)
	sb.WriteString(strconv.FormatUint(uint64(v), 10))
	sb.WriteByte('_')
	// 20 bytes = 160 bits = 32 symbols of 5 bits, read as a big-endian bit string.
	var acc uint64
	bits := 0
	for _, b := range mac[:20] {
		acc = acc<<8 | uint64(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			sb.WriteByte(Alphabet[(acc>>bits)&31])
		}
	}
	return sb.String()
}

// ParseToken checks that s is a well-formed token and returns its key version.
// Its errors wrap ErrInvalidToken and name the rule s broke; they never echo
// s, which a user may have confused with a card number.
func ParseToken(s string) (uint32, error) {
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return 0, fmt.Errorf("%w: it must start with %q", ErrInvalidToken, Prefix)
	}
	num, body, ok := strings.Cut(rest, "_")
	if !ok {
		return 0, fmt.Errorf("%w: no '_' after the key version", ErrInvalidToken)
	}
	v, err := strconv.ParseUint(num, 10, 32)
	if err != nil || v == 0 || num[0] == '0' {
		return 0, fmt.Errorf("%w: the key version after %q must be a number from 1 without leading zeros", ErrInvalidToken, Prefix)
	}
	if len(body) != bodyLen {
		return 0, fmt.Errorf("%w: the body after tok_v%d_ has %d characters, want %d", ErrInvalidToken, v, len(body), bodyLen)
	}
	for i := 0; i < len(body); i++ {
		if strings.IndexByte(Alphabet, body[i]) >= 0 {
			continue
		}
		what := "a character that is not a letter"
		if c := body[i]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			what = fmt.Sprintf("the letter %q", c)
		}
		return 0, fmt.Errorf("%w: character %d of the body is %s; tokens use only the letters %s (no vowels, no l, I or O)", ErrInvalidToken, i+1, what, Alphabet)
	}
	return uint32(v), nil
}
