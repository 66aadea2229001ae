package gateway

import "testing"

// TestFingerprintStable pins the request fingerprint: entries already in the
// Idempotency-Key state were written with it, so a change would turn every
// retry of them into a 409.
func TestFingerprintStable(t *testing.T) {
	m, y, a := int32(12), int32(2030), int64(1999)
	cvv, name, parent := "123", "Jane", "p-0"
	for _, c := range []struct {
		q    paymentRequest
		want string
	}{
		{paymentRequest{PaymentID: "p", EventType: "AUTHORIZATION", ExpiryMonth: &m, ExpiryYear: &y, AmountMinor: &a, Currency: "EUR", MerchantID: "m"},
			"d849d0e202c66d168ae82c765ff77a41638f9a6ffc1d5ba8cb755bd6cbf508eb"},
		{paymentRequest{PaymentID: "p", EventType: "AUTHORIZATION", ParentPaymentID: &parent, ExpiryMonth: &m, ExpiryYear: &y, CVV: &cvv,
			CardholderName: &name, AmountMinor: &a, Currency: "EUR", MerchantID: "m", OccurredAt: 77,
			Metadata: map[string]string{"z": "1", "a": "2", "m": ""}},
			"48ad7dd7c44cc7c82cf85a05a752cd02d8c61b0cc8f3a4345fd4d79e39c58b97"},
	} {
		if got := fingerprint("tok_v1_abc", &c.q); got != c.want {
			t.Errorf("fingerprint %s, want %s", got, c.want)
		}
	}
}
