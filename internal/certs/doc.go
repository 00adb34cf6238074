// Package certs provides the certificates of Herald's TLS listener: a
// certificate and key read from PEM files and loaded again when they
// change, or certificates obtained and renewed through ACME (with its
// HTTP-01 handler and its cache). Its one job is to hand out a
// *tls.Config whose GetCertificate serves them; the transport terminates
// TLS with that config and knows nothing of files, reloads or CAs.
package certs
