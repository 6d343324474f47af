package authenticode

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
)

// KnownCA is one of Microsoft's UEFI certificate authorities.
type KnownCA struct {
	ID     string // stable identifier, e.g. "microsoft-uefi-ca-2023"
	Name   string // the certificate's subject common name
	SHA256 string // SHA-256 fingerprint of the DER certificate, lower-case hex
}

// knownCA adds what identifies a CA when its certificate is not at hand: its
// subject (DER), subject key identifier and the SHA-256 of its
// SubjectPublicKeyInfo.
type knownCA struct {
	KnownCA
	subject string // hex DER
	skid    string // hex
	spki    string // hex SHA-256 of RawSubjectPublicKeyInfo
}

// knownCAs was computed from microsoft/secureboot_objects' PreSignedObjects
// (DB and KEK certificates) as copied to testdata/secureboot/certs; the
// package tests recompute every value from those files.
var knownCAs = []knownCA{
	{
		KnownCA: KnownCA{"microsoft-uefi-ca-2011", "Microsoft Corporation UEFI CA 2011",
			"48e99b991f57fc52f76149599bff0a58c47154229b9f8d603ac40d3500248507"},
		subject: "308181310b3009060355040613025553311330110603550408130a57617368696e67746f6e3110300e060355040713075265646d6f6e64311e301c060355040a13154d6963726f736f667420436f72706f726174696f6e312b3029060355040313224d6963726f736f667420436f72706f726174696f6e20554546492043412032303131",
		skid:    "13adbf4309bd82709c8cd54f316ed522988a1bd4",
		spki:    "2c627ccbb690409550ad6e2d46a03eb10aa6d62d272a5dc3c86a8863ae19b2bb",
	},
	{
		KnownCA: KnownCA{"microsoft-uefi-ca-2023", "Microsoft UEFI CA 2023",
			"f6124e34125bee3fe6d79a574eaa7b91c0e7bd9d929c1a321178efd611dad901"},
		subject: "304e310b3009060355040613025553311e301c060355040a13154d6963726f736f667420436f72706f726174696f6e311f301d060355040313164d6963726f736f667420554546492043412032303233",
		skid:    "81aa6b3244c935bce0d6628af39827421e32497d",
		spki:    "f0f6d23f74457473749a72d5aa55b9efe491dd0bc3068905b019940abe8b5cc3",
	},
	{
		KnownCA: KnownCA{"microsoft-windows-production-pca-2011", "Microsoft Windows Production PCA 2011",
			"e8e95f0733a55e8bad7be0a1413ee23c51fcea64b3c8fa6a786935fddcc71961"},
		subject: "308184310b3009060355040613025553311330110603550408130a57617368696e67746f6e3110300e060355040713075265646d6f6e64311e301c060355040a13154d6963726f736f667420436f72706f726174696f6e312e302c060355040313254d6963726f736f66742057696e646f77732050726f64756374696f6e205043412032303131",
		skid:    "a92902398e16c49778cd90f99e4f9ae17c55af53",
		spki:    "96fcf444012a77ea14f34f349c469c85e2749fce709e0bcdf2e5eab431cdccae",
	},
	{
		KnownCA: KnownCA{"windows-uefi-ca-2023", "Windows UEFI CA 2023",
			"076f1fea90ac29155ebf77c17682f75f1fdd1be196da302dc8461e350a9ae330"},
		subject: "304c310b3009060355040613025553311e301c060355040a13154d6963726f736f667420436f72706f726174696f6e311d301b0603550403131457696e646f777320554546492043412032303233",
		skid:    "aefc5fbbbe055d8f8daa585473499417ab5a5272",
		spki:    "b45bbdd94c9bf231bb8d9dbf47f6dc917fe7ebea7ef95aeede218d7e9d395f9a",
	},
	{
		KnownCA: KnownCA{"microsoft-option-rom-uefi-ca-2023", "Microsoft Option ROM UEFI CA 2023",
			"e5be3e64c6e66a281457ecdece0d6d0787577aad2a3a0144262c10c14ba8d8f1"},
		subject: "3059310b3009060355040613025553311e301c060355040a13154d6963726f736f667420436f72706f726174696f6e312a3028060355040313214d6963726f736f6674204f7074696f6e20524f4d20554546492043412032303233",
		skid:    "514fbf937fa46fb57bf07af8bed84b3b864b1711",
		spki:    "70b05022adf8de3061983894f3be9140205f84aaa49a860734337a45d9d93d4a",
	},
	{
		KnownCA: KnownCA{"microsoft-kek-ca-2011", "Microsoft Corporation KEK CA 2011",
			"a1117f516a32cefcba3f2d1ace10a87972fd6bbe8fe0d0b996e09e65d802a503"},
		subject: "308180310b3009060355040613025553311330110603550408130a57617368696e67746f6e3110300e060355040713075265646d6f6e64311e301c060355040a13154d6963726f736f667420436f72706f726174696f6e312a3028060355040313214d6963726f736f667420436f72706f726174696f6e204b454b2043412032303131",
		skid:    "62fc43cda03ea4cb6712d25bd955ac7bccb68a5f",
		spki:    "8b0efb708d89cc30580fb810aee3bd1dd33f84e07b5ac7f0a43c428df286b899",
	},
	{
		KnownCA: KnownCA{"microsoft-kek-2k-ca-2023", "Microsoft Corporation KEK 2K CA 2023",
			"3cd3f0309edae228767a976dd40d9f4affc4fbd5218f2e8cc3c9dd97e8ac6f9d"},
		subject: "305c310b3009060355040613025553311e301c060355040a13154d6963726f736f667420436f72706f726174696f6e312d302b060355040313244d6963726f736f667420436f72706f726174696f6e204b454b20324b2043412032303233",
		skid:    "e0ab72bc963effb8669b7d105a433e5c4254875f",
		spki:    "0f5b9c6e752dc238a09810a1e58cf25d82c532bffd34e82480195e8243892e1a",
	},
}

// KnownCAs returns the well-known Microsoft UEFI CAs: the db certificates
// (UEFI CA 2011 and 2023, Windows Production PCA 2011, Windows UEFI CA 2023,
// Option ROM UEFI CA 2023) and the KEK certificates (KEK CA 2011, KEK 2K CA
// 2023).
func KnownCAs() []KnownCA {
	out := make([]KnownCA, len(knownCAs))
	for i, k := range knownCAs {
		out[i] = k.KnownCA
	}
	return out
}

// IdentifyCA reports which known CA c is: by the fingerprint of its DER, or,
// for another issuance of the same CA, by an equal subject and public key
// (edk2 would accept the one in place of the other, since it checks names and
// signatures only).
func IdentifyCA(c *x509.Certificate) (KnownCA, bool) {
	if c == nil {
		return KnownCA{}, false
	}
	fp := sha256.Sum256(c.Raw)
	for _, k := range knownCAs {
		if hex.EncodeToString(fp[:]) == k.SHA256 {
			return k.KnownCA, true
		}
	}
	spki := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	for _, k := range knownCAs {
		if hex.EncodeToString(spki[:]) == k.spki && sameName(c.RawSubject, mustHex(k.subject)) {
			return k.KnownCA, true
		}
	}
	return KnownCA{}, false
}

// KnownCA returns the ID of the first known CA in the signature's Chain, or,
// when none is embedded, of the known CA that issued the top of the chain (its
// issuer name is the CA's subject and its AuthorityKeyId the CA's
// SubjectKeyId); "" if neither.
func (s *Signature) KnownCA() string {
	for _, c := range s.Chain {
		if k, ok := IdentifyCA(c); ok {
			return k.ID
		}
	}
	if len(s.Chain) == 0 {
		return ""
	}
	top := s.Chain[len(s.Chain)-1]
	if len(top.AuthorityKeyId) == 0 {
		return ""
	}
	for _, k := range knownCAs {
		if bytes.Equal(top.AuthorityKeyId, mustHex(k.skid)) && sameName(top.RawIssuer, mustHex(k.subject)) {
			return k.ID
		}
	}
	return ""
}

// mustHex decodes the package's own constants.
func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic("authenticode: bad constant " + s)
	}
	return b
}
