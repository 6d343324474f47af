package pkgdb

import (
	"context"
	"os"
	"testing"
)

func FuzzDpkgStatus(f *testing.F) {
	f.Add([]byte("Package: a\nStatus: install ok installed\nVersion: 1:2~3-4\nArchitecture: amd64\nSource: b (5)\nConffiles:\n /etc/a 0123456789abcdef0123456789abcdef obsolete\n\n"))
	f.Add([]byte("Package: x\n continuation\nbad\n\n\n :\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, _ := ParseDpkgStatus(b, "status", true)
		for _, p := range pkgs {
			if p.Name == "" {
				t.Fatal("package without a name")
			}
		}
		ParseMD5Sums(b, "md5sums")
	})
}

func FuzzAPKInstalled(f *testing.F) {
	f.Add([]byte("P:musl\nV:1.2.4-r4\nA:x86_64\nL:MIT\no:musl\nF:lib\nR:ld.so\na:0:0:755\nZ:Q1AhL0rdNp5vsqnh9xAGMyxd7Y3fM=\n\n"))
	f.Add([]byte("Z:Q2\nR:x\nF:\nP:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseAPKInstalled(b, "installed")
	})
}

func FuzzRPMHeader(f *testing.F) {
	if p, err := centosSeed(); err == nil {
		if b, err := os.ReadFile(p); err == nil {
			blobs, _ := BDBBlobs(b, "Packages")
			for i := 0; i < len(blobs) && i < 3; i++ {
				f.Add(blobs[i].Data)
			}
		}
	}
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 16, 0, 0, 0, 63, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 16})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		_, _ = PackageFromHeader(h, "fuzz")
	})
}

func FuzzRPMDatabase(f *testing.F) {
	f.Add(ndbFile([][]byte{{0, 0, 0, 1, 0, 0, 0, 0}}))
	if p, err := centosSeed(); err == nil {
		if b, err := os.ReadFile(p); err == nil && len(b) > 64<<10 {
			f.Add(b[:64<<10])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if DetectRPMFormat(b) == RPMFormatSQLite {
			return // SQLite parses its own files; it is not ours to fuzz
		}
		RPMHeaderBlobs(context.Background(), b, nil, "db")
	})
}

// centosSeed is go-rpmdb's CentOS 7 database for seeds, fetched from the Go
// module proxy.
func centosSeed() (string, error) {
	return centosPackagesPath()
}
