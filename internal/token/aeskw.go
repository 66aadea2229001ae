package token

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// aesKWIV is the default initial value of RFC 3394 section 2.2.3.1.
var aesKWIV = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

// errKeyUnwrap is returned when an AES-KW integrity check fails: the wrapped
// key was altered or the wrong KEK was used.
var errKeyUnwrap = errors.New("key unwrap failed: wrong key-encryption key or corrupted wrapped key")

// aesKeyWrap wraps plaintext key material (a multiple of 8 bytes, at least 16)
// under kek with AES key wrap (RFC 3394, NIST SP 800-38F KW). The standard
// library has AES but no KW mode; the algorithm is a dozen lines and is tested
// against the RFC's vectors.
func aesKeyWrap(kek, plain []byte) ([]byte, error) {
	if len(plain)%8 != 0 || len(plain) < 16 {
		return nil, fmt.Errorf("aes key wrap: key material must be a multiple of 8 bytes and at least 16, got %d", len(plain))
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("aes key wrap: %w", err)
	}
	n := len(plain) / 8
	out := make([]byte, 8+len(plain))
	copy(out[8:], plain)
	var a [8]byte = aesKWIV
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(buf[:8], a[:])
			copy(buf[8:], out[8*i:8*i+8])
			b.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(buf[:8])^t)
			copy(out[8*i:8*i+8], buf[8:])
		}
	}
	copy(out[:8], a[:])
	return out, nil
}

// aesKeyUnwrap reverses aesKeyWrap and checks the integrity value.
func aesKeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped)%8 != 0 || len(wrapped) < 24 {
		return nil, fmt.Errorf("aes key unwrap: wrapped key must be a multiple of 8 bytes and at least 24, got %d", len(wrapped))
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("aes key unwrap: %w", err)
	}
	n := len(wrapped)/8 - 1
	out := make([]byte, len(wrapped)-8)
	copy(out, wrapped[8:])
	var a [8]byte
	copy(a[:], wrapped[:8])
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a[:])^t)
			copy(buf[8:], out[8*(i-1):8*i])
			b.Decrypt(buf[:], buf[:])
			copy(a[:], buf[:8])
			copy(out[8*(i-1):8*i], buf[8:])
		}
	}
	if subtle.ConstantTimeCompare(a[:], aesKWIV[:]) != 1 {
		clear(out)
		return nil, errKeyUnwrap
	}
	return out, nil
}
