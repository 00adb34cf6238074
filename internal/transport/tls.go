package transport

import (
	stdtls "crypto/tls"
	"errors"
	"slices"

	"github.com/lesismal/llib/std/crypto/tls"
)

// convertTLSConfig turns a crypto/tls server config into the one of the
// TLS implementation nbio uses (a fork of crypto/tls).
func convertTLSConfig(in *stdtls.Config) (*tls.Config, error) {
	if len(in.Certificates) == 0 && in.GetCertificate == nil {
		return nil, errors.New("transport: TLS config has no certificate")
	}
	out := &tls.Config{
		MinVersion:             in.MinVersion,
		MaxVersion:             in.MaxVersion,
		CipherSuites:           in.CipherSuites,
		ClientAuth:             tls.ClientAuthType(in.ClientAuth),
		ClientCAs:              in.ClientCAs,
		NextProtos:             nextProtos(in.NextProtos),
		Time:                   in.Time,
		SessionTicketsDisabled: in.SessionTicketsDisabled,
	}
	if out.MinVersion == 0 {
		out.MinVersion = tls.VersionTLS12
	}
	for _, c := range in.CurvePreferences {
		out.CurvePreferences = append(out.CurvePreferences, tls.CurveID(c))
	}
	for i := range in.Certificates {
		out.Certificates = append(out.Certificates, convertCert(&in.Certificates[i]))
	}
	if get := in.GetCertificate; get != nil {
		out.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			// All the hello says, so that a certificate source can choose
			// by it (autocert picks ECDSA or RSA from the schemes, curves
			// and suites).
			ch := &stdtls.ClientHelloInfo{
				ServerName:        hello.ServerName,
				SupportedProtos:   hello.SupportedProtos,
				CipherSuites:      hello.CipherSuites,
				SupportedPoints:   hello.SupportedPoints,
				SupportedVersions: hello.SupportedVersions,
			}
			for _, c := range hello.SupportedCurves {
				ch.SupportedCurves = append(ch.SupportedCurves, stdtls.CurveID(c))
			}
			for _, s := range hello.SignatureSchemes {
				ch.SignatureSchemes = append(ch.SignatureSchemes, stdtls.SignatureScheme(s))
			}
			c, err := get(ch)
			if err != nil || c == nil {
				return nil, err
			}
			cc := convertCert(c)
			return &cc, nil
		}
	}
	return out, nil
}

// nextProtos is what the server offers in ALPN: always http/1.1 first,
// never h2 (the engine speaks HTTP/1.1), and whatever else the config
// lists for handshakes its certificate source answers on its own (ACME's
// TLS-ALPN-01 challenge offers acme-tls/1).
func nextProtos(in []string) []string {
	out := []string{"http/1.1"}
	for _, p := range in {
		if p != "h2" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func convertCert(c *stdtls.Certificate) tls.Certificate {
	return tls.Certificate{
		Certificate:                 c.Certificate,
		PrivateKey:                  c.PrivateKey,
		OCSPStaple:                  c.OCSPStaple,
		SignedCertificateTimestamps: c.SignedCertificateTimestamps,
		Leaf:                        c.Leaf,
	}
}
