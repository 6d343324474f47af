package efi

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// LoadOption is an EFI_LOAD_OPTION, the value of Boot#### (UEFI 2.10 §3.1.3).
type LoadOption struct {
	Attributes   uint32
	Description  string
	FilePath     DevicePath // the first device path instance and any further ones
	OptionalData []byte
}

// Load option attribute bits.
const (
	LoadOptionActive         = 0x00000001
	LoadOptionForceReconnect = 0x00000002
	LoadOptionHidden         = 0x00000008
	LoadOptionCategoryApp    = 0x00000100
)

// Active reports LOAD_OPTION_ACTIVE.
func (lo *LoadOption) Active() bool { return lo.Attributes&LoadOptionActive != 0 }

// ParseLoadOption parses an EFI_LOAD_OPTION. The returned slices alias b.
func ParseLoadOption(b []byte) (*LoadOption, error) {
	return parseLoadOption(b, "load option")
}

func parseLoadOption(b []byte, source string) (*LoadOption, error) {
	if len(b) < 6 {
		return nil, formatErr(source, 0, "%d bytes is too short for a load option header", len(b))
	}
	lo := &LoadOption{Attributes: binary.LittleEndian.Uint32(b)}
	fpLen := int(binary.LittleEndian.Uint16(b[4:]))
	p := 6
	end := -1
	for i := p; i+1 < len(b); i += 2 {
		if b[i] == 0 && b[i+1] == 0 {
			end = i
			break
		}
	}
	if end < 0 {
		return nil, formatErr(source, p, "description is not NUL-terminated")
	}
	lo.Description = decodeUTF16(b[p:end])
	p = end + 2
	if fpLen > len(b)-p {
		return nil, formatErr(source, 4, "device path list length %d extends past end of data (%d bytes left at 0x%x)", fpLen, len(b)-p, p)
	}
	dp, err := parseDevicePath(b[p:p+fpLen], source, p)
	if err != nil {
		return nil, err
	}
	lo.FilePath = dp
	lo.OptionalData = b[p+fpLen:]
	return lo, nil
}

// DevicePathNode is one EFI_DEVICE_PATH_PROTOCOL node: type, sub-type and the
// bytes after the 4-byte node header.
type DevicePathNode struct {
	Type    uint8
	SubType uint8
	Data    []byte
}

// Device path node types.
const (
	HardwareDevicePath  = 0x01
	ACPIDevicePath      = 0x02
	MessagingDevicePath = 0x03
	MediaDevicePath     = 0x04
	BBSDevicePath       = 0x05
	EndDevicePath       = 0x7f

	endEntireSubType   = 0xff
	endInstanceSubType = 0x01
)

// DevicePath is a sequence of nodes. Parsing stops at the End Entire node,
// which is not kept; End Instance nodes between instances are kept.
type DevicePath []DevicePathNode

// ParseDevicePath parses a device path up to its End Entire node. A path that
// runs out before the end node, or a node shorter than its 4-byte header, is
// an error.
func ParseDevicePath(b []byte) (DevicePath, error) {
	return parseDevicePath(b, "device path", 0)
}

func parseDevicePath(b []byte, source string, base int) (DevicePath, error) {
	var dp DevicePath
	p := 0
	for {
		if len(b)-p < 4 {
			return nil, formatErr(source, base+p, "device path ends without an end node")
		}
		t, st := b[p], b[p+1]
		n := int(binary.LittleEndian.Uint16(b[p+2:]))
		if n < 4 {
			return nil, formatErr(source, base+p, "device path node length %d is shorter than its header", n)
		}
		if n > len(b)-p {
			return nil, formatErr(source, base+p, "device path node length %d extends past end of path (%d bytes left)", n, len(b)-p)
		}
		if t == EndDevicePath && st == endEntireSubType {
			return dp, nil
		}
		dp = append(dp, DevicePathNode{Type: t, SubType: st, Data: b[p+4 : p+n : p+n]})
		p += n
	}
}

// FilePath returns the concatenated media file path nodes, with backslashes,
// e.g. `\EFI\debian\shimx64.efi`, or "" when there are none.
func (p DevicePath) FilePath() string {
	var out string
	for _, n := range p {
		if n.Type == EndDevicePath {
			break // only the first instance
		}
		if n.Type != MediaDevicePath || n.SubType != 0x04 {
			continue
		}
		s := decodeUTF16(n.Data)
		switch {
		case out == "":
			out = s
		case strings.HasSuffix(out, `\`) && strings.HasPrefix(s, `\`):
			out += s[1:]
		case strings.HasSuffix(out, `\`) || strings.HasPrefix(s, `\`):
			out += s
		default:
			out += `\` + s
		}
	}
	return out
}

// String gives the UEFI text form (UEFI 2.10 §10.6), e.g.
// `PciRoot(0x0)/Pci(0x1,0x1)/Sata(0x0,0xFFFF,0x0)/HD(1,GPT,...,0x800,0x100000)/File(\EFI\debian\shimx64.efi)`.
// Nodes it does not know are "Path(type,subtype,hex)".
func (p DevicePath) String() string {
	var sb strings.Builder
	for i, n := range p {
		if n.Type == EndDevicePath && n.SubType == endInstanceSubType {
			sb.WriteString(",")
			continue
		}
		if i > 0 && !(p[i-1].Type == EndDevicePath && p[i-1].SubType == endInstanceSubType) {
			sb.WriteString("/")
		}
		sb.WriteString(n.String())
	}
	return sb.String()
}

// String gives the text form of one node.
func (n DevicePathNode) String() string {
	if s, ok := n.text(); ok {
		return s
	}
	return fmt.Sprintf("Path(%d,%d,%s)", n.Type, n.SubType, hex.EncodeToString(n.Data))
}

func (n DevicePathNode) u8(off int) uint8   { return n.Data[off] }
func (n DevicePathNode) u16(off int) uint16 { return binary.LittleEndian.Uint16(n.Data[off:]) }
func (n DevicePathNode) u32(off int) uint32 { return binary.LittleEndian.Uint32(n.Data[off:]) }
func (n DevicePathNode) u64(off int) uint64 { return binary.LittleEndian.Uint64(n.Data[off:]) }
func (n DevicePathNode) guid(off int) GUID {
	var g GUID
	copy(g[:], n.Data[off:off+16])
	return g
}

// vendor formats VenHw/VenMsg/VenMedia: the GUID and any data in hex.
func (n DevicePathNode) vendor(name string) (string, bool) {
	if len(n.Data) < 16 {
		return "", false
	}
	if len(n.Data) == 16 {
		return fmt.Sprintf("%s(%s)", name, n.guid(0)), true
	}
	return fmt.Sprintf("%s(%s,%s)", name, n.guid(0), strings.ToUpper(hex.EncodeToString(n.Data[16:]))), true
}

// text formats the nodes UEFI's DevicePathToText knows that vouch meets in
// boot entries. ok is false when the node is unknown or has the wrong size.
func (n DevicePathNode) text() (string, bool) {
	d := n.Data
	switch n.Type {
	case HardwareDevicePath:
		switch n.SubType {
		case 0x01: // PCI: Function, Device
			if len(d) == 2 {
				return fmt.Sprintf("Pci(0x%x,0x%x)", n.u8(1), n.u8(0)), true
			}
		case 0x03:
			if len(d) == 20 {
				return fmt.Sprintf("MemoryMapped(0x%x,0x%x,0x%x)", n.u32(0), n.u64(4), n.u64(12)), true
			}
		case 0x04:
			return n.vendor("VenHw")
		case 0x05:
			if len(d) == 4 {
				return fmt.Sprintf("Ctrl(0x%x)", n.u32(0)), true
			}
		}
	case ACPIDevicePath:
		if n.SubType == 0x01 && len(d) == 8 {
			hid, uid := n.u32(0), n.u32(4)
			switch hid {
			case eisaID(0x0a03):
				return fmt.Sprintf("PciRoot(0x%x)", uid), true
			case eisaID(0x0a08):
				return fmt.Sprintf("PcieRoot(0x%x)", uid), true
			}
			if hid&0xffff == 0x41d0 {
				return fmt.Sprintf("Acpi(PNP%04X,0x%x)", hid>>16, uid), true
			}
			return fmt.Sprintf("Acpi(0x%08x,0x%x)", hid, uid), true
		}
	case MessagingDevicePath:
		switch n.SubType {
		case 0x01: // ATAPI
			if len(d) == 4 {
				ch := map[uint8]string{0: "Primary", 1: "Secondary"}[n.u8(0)]
				dev := map[uint8]string{0: "Master", 1: "Slave"}[n.u8(1)]
				if ch == "" || dev == "" {
					return fmt.Sprintf("Ata(0x%x,0x%x,0x%x)", n.u8(0), n.u8(1), n.u16(2)), true
				}
				return fmt.Sprintf("Ata(%s,%s,0x%x)", ch, dev, n.u16(2)), true
			}
		case 0x02:
			if len(d) == 4 {
				return fmt.Sprintf("Scsi(0x%x,0x%x)", n.u16(0), n.u16(2)), true
			}
		case 0x05:
			if len(d) == 2 {
				return fmt.Sprintf("USB(0x%x,0x%x)", n.u8(0), n.u8(1)), true
			}
		case 0x0a:
			return n.vendor("VenMsg")
		case 0x0b: // MAC: 32-byte address, interface type
			if len(d) == 33 {
				size := 32
				if it := n.u8(32); it == 0 || it == 1 {
					size = 6
				}
				return fmt.Sprintf("MAC(%s,0x%x)", hex.EncodeToString(d[:size]), n.u8(32)), true
			}
		case 0x0c: // IPv4
			if len(d) == 15 || len(d) == 23 {
				local := netip.AddrFrom4([4]byte(d[0:4]))
				remote := netip.AddrFrom4([4]byte(d[4:8]))
				proto := fmt.Sprintf("0x%x", n.u16(12))
				switch n.u16(12) {
				case 6:
					proto = "TCP"
				case 17:
					proto = "UDP"
				}
				kind := "DHCP"
				if n.u8(14) != 0 {
					kind = "Static"
				}
				s := fmt.Sprintf("IPv4(%s,%s,%s,%s", remote, proto, kind, local)
				if len(d) == 23 {
					s += fmt.Sprintf(",%s,%s", netip.AddrFrom4([4]byte(d[15:19])), netip.AddrFrom4([4]byte(d[19:23])))
				}
				return s + ")", true
			}
		case 0x0d: // IPv6: local, remote, ports, protocol, origin...
			if len(d) >= 39 {
				return fmt.Sprintf("IPv6(%s)", netip.AddrFrom16([16]byte(d[16:32]))), true
			}
		case 0x11:
			if len(d) == 1 {
				return fmt.Sprintf("Unit(0x%x)", n.u8(0)), true
			}
		case 0x12: // SATA
			if len(d) == 6 {
				return fmt.Sprintf("Sata(0x%x,0x%x,0x%x)", n.u16(0), n.u16(2), n.u16(4)), true
			}
		case 0x14:
			if len(d) == 2 {
				return fmt.Sprintf("Vlan(%d)", n.u16(0)), true
			}
		case 0x17: // NVMe: namespace id, EUI-64 (printed most significant byte first, as edk2 does)
			if len(d) == 12 {
				e := d[4:12]
				return fmt.Sprintf("NVMe(0x%x,%02X-%02X-%02X-%02X-%02X-%02X-%02X-%02X)", n.u32(0), e[7], e[6], e[5], e[4], e[3], e[2], e[1], e[0]), true
			}
		case 0x18:
			return fmt.Sprintf("Uri(%s)", string(d)), true
		case 0x1a:
			if len(d) == 1 {
				return fmt.Sprintf("SD(0x%x)", n.u8(0)), true
			}
		case 0x1d:
			if len(d) == 1 {
				return fmt.Sprintf("eMMC(0x%x)", n.u8(0)), true
			}
		}
	case MediaDevicePath:
		switch n.SubType {
		case 0x01: // hard drive: partition, start, size, signature, MBR type, signature type
			if len(d) == 38 {
				part, start, size := n.u32(0), n.u64(4), n.u64(12)
				switch d[37] {
				case 0x01:
					return fmt.Sprintf("HD(%d,MBR,0x%08x,0x%x,0x%x)", part, n.u32(20), start, size), true
				case 0x02:
					return fmt.Sprintf("HD(%d,GPT,%s,0x%x,0x%x)", part, n.guid(20), start, size), true
				default:
					return fmt.Sprintf("HD(%d,%d,0,0x%x,0x%x)", part, d[37], start, size), true
				}
			}
		case 0x02:
			if len(d) == 20 {
				return fmt.Sprintf("CDROM(0x%x,0x%x,0x%x)", n.u32(0), n.u64(4), n.u64(12)), true
			}
		case 0x03:
			return n.vendor("VenMedia")
		case 0x04:
			return fmt.Sprintf("File(%s)", decodeUTF16(d)), true
		case 0x06:
			if len(d) == 16 {
				return fmt.Sprintf("FvFile(%s)", n.guid(0)), true
			}
		case 0x07:
			if len(d) == 16 {
				return fmt.Sprintf("Fv(%s)", n.guid(0)), true
			}
		case 0x08:
			if len(d) == 20 {
				return fmt.Sprintf("Offset(0x%x,0x%x)", n.u64(4), n.u64(12)), true
			}
		}
	case BBSDevicePath:
		if n.SubType == 0x01 && len(d) >= 4 {
			names := map[uint16]string{1: "Floppy", 2: "HD", 3: "CDROM", 4: "PCMCIA", 5: "USB", 6: "Network"}
			typ, ok := names[n.u16(0)]
			if !ok {
				typ = fmt.Sprintf("0x%x", n.u16(0))
			}
			desc := d[4:]
			if i := strings.IndexByte(string(desc), 0); i >= 0 {
				desc = desc[:i]
			}
			return fmt.Sprintf("BBS(%s,%s,0x%x)", typ, desc, n.u16(2)), true
		}
	case EndDevicePath:
		return "End", true
	}
	return "", false
}

// eisaID is EISA_PNP_ID: the compressed "PNP" vendor in the low word.
func eisaID(pnp uint32) uint32 { return pnp<<16 | 0x41d0 }
