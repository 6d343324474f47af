package authenticode

// Test-only access to internals for the external test package.

// ParseSignedData runs the PKCS#7 SignedData parser alone.
func ParseSignedData(b []byte) error {
	_, err := parseSignedData(b)
	return err
}

// PEChecksum computes the PE checksum of an image.
func PEChecksum(b []byte) (uint32, error) {
	im, err := Parse(b)
	if err != nil {
		return 0, err
	}
	return peChecksum(b, im.checksumOff), nil
}
