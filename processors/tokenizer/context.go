package tokenizer

import (
	"crypto/sha256"
	"strconv"

	"github.com/pcistream/pcistream/internal/token"
)

// Context ids tie together every event of one payment's life: authorization,
// capture, refund, chargeback. They are derived, never random, so a replay of
// the same input gives the same ids and no lookup is needed to link events:
//
//   - a payment's own context is ctx(payment_id);
//   - captures, refunds and chargebacks carry the context of the payment they
//     refer to, ctx(parent_payment_id), so an assessor follows an
//     authorization to its chargeback by one id;
//   - a split child derives its context from its parent's:
//     ctx(parent context, payment_id), and links the parent's context.
//
// Ids are "ctx_" and 26 letters of the token alphabet (130 bits of SHA-256):
// no digits, so the PAN detector never trips on them. They are not secret and
// are computed from non-secret ids, so a plain hash is fine here.
const contextPrefix = "ctx_"

func contextID(parts ...string) string {
	h := sha256.New()
	h.Write([]byte("pcistream/context/v1"))
	for _, p := range parts {
		// Length-prefix each part so ("ab","c") and ("a","bc") differ.
		h.Write([]byte{0})
		h.Write(strconv.AppendInt(nil, int64(len(p)), 10))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	sum := h.Sum(nil)
	b := make([]byte, 0, len(contextPrefix)+26)
	b = append(b, contextPrefix...)
	var acc uint64
	bits := 0
	for _, c := range sum {
		acc = acc<<8 | uint64(c)
		bits += 8
		for bits >= 5 && len(b) < cap(b) {
			bits -= 5
			b = append(b, token.Alphabet[(acc>>bits)&31])
		}
		if len(b) == cap(b) {
			break
		}
	}
	return string(b)
}

// paymentContext is the context of a payment id.
func paymentContext(paymentID string) string { return contextID("payment", paymentID) }

// childContext is the context of split child childID under parentCtx.
func childContext(parentCtx, childID string) string { return contextID("split", parentCtx, childID) }

// offsetContext is the context of an event without a payment id: its input
// coordinates, which are stable under replay.
func offsetContext(topic string, partition int32, offset int64) string {
	return contextID("offset", topic, strconv.FormatInt(int64(partition), 10), strconv.FormatInt(offset, 10))
}
