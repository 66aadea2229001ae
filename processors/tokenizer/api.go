package tokenizer

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pcistream/pcistream/internal/pan"
	"github.com/pcistream/pcistream/internal/token"
	"github.com/pcistream/pcistream/schemas"
)

// This file is the tokenizer's API for other entry points of payments (the
// HTTP gateway): the same checks, context ids and vault entries as the
// stream path, so a payment is judged the same way wherever it enters.

// Rejection is a validation failure: a stable reason code (the Reason*
// constants) and a message that never contains cardholder data.
type Rejection struct {
	Code    string
	Message string
}

// Error implements error.
func (r *Rejection) Error() string { return r.Code + ": " + r.Message }

// Checked is what validation learned about a valid payment.
type Checked struct {
	Network         pan.Network
	Last4           string
	ContextID       string
	ParentContextID *string
}

// ValidatePayment applies the tokenizer's checks to p exactly as the
// tokenizer applies them to a record of payments.raw: PAN (digits, length,
// Luhn, network), expiry at the event time (OccurredAt, else at), CVV,
// amount and currency, merchant, event type and parent. On success it
// returns the network, last four and context ids. rec gives the input
// coordinates used for the context of a payment with neither payment id nor
// idempotency key; callers outside the stream may pass nil when they require
// a payment id.
func ValidatePayment(p *schemas.RawPayment, rec *kgo.Record, at time.Time) (Checked, *Rejection) {
	buf := make([]byte, 0, 32)
	defer clear(buf[:cap(buf)])
	if rec == nil {
		rec = &kgo.Record{Timestamp: at}
	}
	chk, digits, rej := validatePayment(p, rec, buf)
	clear(digits)
	if rej != nil {
		return Checked{}, &Rejection{Code: rej.code, Message: rej.msg}
	}
	return chk, nil
}

// validatePayment runs every check in the tokenizer's order and returns the
// PAN's digits in buf (the caller clears it) when the payment is valid.
func validatePayment(p *schemas.RawPayment, rec *kgo.Record, buf []byte) (Checked, []byte, *rejection) {
	digits := cleanPAN(buf, p.PAN)
	var chk Checked
	var rej *rejection
	if digits == nil {
		rej = &rejection{ReasonInvalidPAN, "PAN may hold only digits, spaces and dashes"}
	} else {
		chk.Network, rej = checkPAN(digits)
	}
	if rej == nil {
		rej = checkExpiry(p.ExpiryMonth, p.ExpiryYear, eventTime(p, rec))
	}
	if rej == nil {
		rej = checkCVV(p.CVV)
	}
	if rej == nil {
		rej = checkAmount(p.AmountMinor, p.Currency)
	}
	if rej == nil && p.MerchantID == "" {
		rej = &rejection{ReasonInvalidMerchantID, "merchant_id is empty"}
	}
	if rej == nil {
		chk.ContextID, chk.ParentContextID, rej = contexts(p, rec)
	}
	if rej != nil {
		return Checked{}, digits, rej
	}
	chk.Last4 = string(digits[len(digits)-4:])
	return chk, digits, nil
}

// CheckPAN validates a bare PAN (digits with optional spaces and dashes):
// length, Luhn and a known network. It returns the network and the digits
// appended to buf; the caller clears them after use.
func CheckPAN(buf []byte, s string) (pan.Network, []byte, *Rejection) {
	digits := cleanPAN(buf, s)
	if digits == nil {
		return pan.Unknown, nil, &Rejection{ReasonInvalidPAN, "PAN may hold only digits, spaces and dashes"}
	}
	n, rej := checkPAN(digits)
	if rej != nil {
		return pan.Unknown, digits, &Rejection{rej.code, rej.msg}
	}
	return n, digits, nil
}

// SealVaultEntry tokenizes digits under kr's current version and seals them
// into the vault entry the tokenizer writes for that token, created at at.
func SealVaultEntry(ctx context.Context, kr *token.Keyring, vault *token.Vault, digits []byte, at time.Time) (string, schemas.VaultEntry, error) {
	return sealVaultEntry(ctx, kr, vault, digits, at, func(v uint32) string { return kekID(kr, v) })
}

// sealVaultEntry is SealVaultEntry with the key-encryption key's name from
// kek (the tokenizer memoises it per version: a version's KMS key never
// changes, and looking it up lists every version).
func sealVaultEntry(ctx context.Context, kr *token.Keyring, vault *token.Vault, digits []byte, at time.Time, kek func(uint32) string) (string, schemas.VaultEntry, error) {
	tok, version, err := kr.Tokenize(digits)
	if err != nil {
		return "", schemas.VaultEntry{}, fmt.Errorf("tokenizing: %w", err)
	}
	sealed, err := vault.Seal(ctx, tok, digits)
	if err != nil {
		return "", schemas.VaultEntry{}, fmt.Errorf("sealing vault entry: %w", err)
	}
	return tok, schemas.VaultEntry{
		Token:      tok,
		KeyVersion: int32(version),
		KEKID:      kek(version),
		WrappedKey: sealed.WrappedKey,
		Nonce:      sealed.Nonce,
		Ciphertext: sealed.Ciphertext,
		Algorithm:  "AES-256-GCM",
		CreatedAt:  at.UnixMilli(),
	}, nil
}

// kekID names the key-encryption key of a version for the vault entry.
func kekID(kr *token.Keyring, v uint32) string {
	for _, vi := range kr.Versions() {
		if vi.Version == v && vi.KMSKeyID != "" {
			return vi.KMSKeyID
		}
	}
	return fmt.Sprintf("keyring:v%d", v)
}
