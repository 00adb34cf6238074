package transport

import (
	stdtls "crypto/tls"
	"errors"

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
		NextProtos:             []string{"http/1.1"}, // never h2: the engine speaks HTTP/1.1
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
			c, err := get(&stdtls.ClientHelloInfo{ServerName: hello.ServerName, SupportedProtos: hello.SupportedProtos})
			if err != nil || c == nil {
				return nil, err
			}
			cc := convertCert(c)
			return &cc, nil
		}
	}
	return out, nil
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
