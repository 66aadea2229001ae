package kafkax

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/pcistream/pcistream/internal/config"
)

// Anonymous is the principal of a client that authenticates neither with
// SASL nor with a TLS client certificate, as Kafka names it.
const Anonymous = "User:ANONYMOUS"

// Principal returns the Kafka principal k authenticates as, in Kafka's own
// form: "User:<name>" for SASL, "User:<subject DN>" for a TLS client
// certificate (the default principal builder's mapping), Anonymous
// otherwise. It is what the broker's ACLs see, so it is what an operator's
// audit events name as the actor: a name typed on the command line is not
// an identity.
func Principal(k config.Kafka) (string, error) {
	if k.SASL.Mechanism != "" {
		if k.SASL.Username == "" {
			return "", fmt.Errorf("--kafka-sasl-mechanism %s needs --kafka-sasl-username", k.SASL.Mechanism)
		}
		return "User:" + k.SASL.Username, nil
	}
	if k.TLS.CertFile != "" {
		b, err := os.ReadFile(k.TLS.CertFile)
		if err != nil {
			return "", fmt.Errorf("--kafka-tls-cert: %w", err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return "", fmt.Errorf("--kafka-tls-cert %s: no PEM certificate", k.TLS.CertFile)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return "", fmt.Errorf("--kafka-tls-cert %s: %w", k.TLS.CertFile, err)
		}
		return "User:" + c.Subject.String(), nil
	}
	return Anonymous, nil
}
