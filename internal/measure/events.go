package measure

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/vouch-dev/vouch/internal/efi"
)

// EventType is an event's type (TCG PC Client Platform Firmware Profile,
// section 10.4.1).
type EventType uint32

// The event types firmware, shim and GRUB write.
const (
	evPrebootCert             EventType = 0x00
	evPostCode                EventType = 0x01
	evNoAction                EventType = 0x03
	evSeparator               EventType = 0x04
	evAction                  EventType = 0x05
	evEventTag                EventType = 0x06
	evSCRTMContents           EventType = 0x07
	evSCRTMVersion            EventType = 0x08
	evCPUMicrocode            EventType = 0x09
	evPlatformConfigFlags     EventType = 0x0a
	evTableOfDevices          EventType = 0x0b
	evCompactHash             EventType = 0x0c
	evIPL                     EventType = 0x0d
	evIPLPartitionData        EventType = 0x0e
	evNonhostCode             EventType = 0x0f
	evNonhostConfig           EventType = 0x10
	evNonhostInfo             EventType = 0x11
	evOmitBootDeviceEvents    EventType = 0x12
	evEFIVariableDriverConfig EventType = 0x80000001
	evEFIVariableBoot         EventType = 0x80000002
	evEFIBootServicesApp      EventType = 0x80000003
	evEFIBootServicesDriver   EventType = 0x80000004
	evEFIRuntimeServicesDrv   EventType = 0x80000005
	evEFIGPTEvent             EventType = 0x80000006
	evEFIAction               EventType = 0x80000007
	evEFIPlatformFirmwareBlob EventType = 0x80000008
	evEFIHandoffTables        EventType = 0x80000009
	evEFIPlatformFirmwareBlb2 EventType = 0x8000000a
	evEFIHandoffTables2       EventType = 0x8000000b
	evEFIVariableBoot2        EventType = 0x8000000c
	evEFIGPTEvent2            EventType = 0x8000000d
	evEFIHCRTMEvent           EventType = 0x80000010
	evEFIVariableAuthority    EventType = 0x800000e0
	evEFISPDMFirmwareBlob     EventType = 0x800000e1
	evEFISPDMFirmwareConfig   EventType = 0x800000e2
)

var eventNames = map[EventType]string{
	evPrebootCert: "EV_PREBOOT_CERT", evPostCode: "EV_POST_CODE", 0x02: "EV_UNUSED",
	evNoAction: "EV_NO_ACTION", evSeparator: "EV_SEPARATOR", evAction: "EV_ACTION",
	evEventTag: "EV_EVENT_TAG", evSCRTMContents: "EV_S_CRTM_CONTENTS",
	evSCRTMVersion: "EV_S_CRTM_VERSION", evCPUMicrocode: "EV_CPU_MICROCODE",
	evPlatformConfigFlags: "EV_PLATFORM_CONFIG_FLAGS", evTableOfDevices: "EV_TABLE_OF_DEVICES",
	evCompactHash: "EV_COMPACT_HASH", evIPL: "EV_IPL", evIPLPartitionData: "EV_IPL_PARTITION_DATA",
	evNonhostCode: "EV_NONHOST_CODE", evNonhostConfig: "EV_NONHOST_CONFIG",
	evNonhostInfo: "EV_NONHOST_INFO", evOmitBootDeviceEvents: "EV_OMIT_BOOT_DEVICE_EVENTS",
	evEFIVariableDriverConfig: "EV_EFI_VARIABLE_DRIVER_CONFIG", evEFIVariableBoot: "EV_EFI_VARIABLE_BOOT",
	evEFIBootServicesApp: "EV_EFI_BOOT_SERVICES_APPLICATION", evEFIBootServicesDriver: "EV_EFI_BOOT_SERVICES_DRIVER",
	evEFIRuntimeServicesDrv: "EV_EFI_RUNTIME_SERVICES_DRIVER", evEFIGPTEvent: "EV_EFI_GPT_EVENT",
	evEFIAction: "EV_EFI_ACTION", evEFIPlatformFirmwareBlob: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
	evEFIHandoffTables: "EV_EFI_HANDOFF_TABLES", evEFIPlatformFirmwareBlb2: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
	evEFIHandoffTables2: "EV_EFI_HANDOFF_TABLES2", evEFIVariableBoot2: "EV_EFI_VARIABLE_BOOT2",
	evEFIGPTEvent2: "EV_EFI_GPT_EVENT2", evEFIHCRTMEvent: "EV_EFI_HCRTM_EVENT",
	evEFIVariableAuthority: "EV_EFI_VARIABLE_AUTHORITY", evEFISPDMFirmwareBlob: "EV_EFI_SPDM_FIRMWARE_BLOB",
	evEFISPDMFirmwareConfig: "EV_EFI_SPDM_FIRMWARE_CONFIG",
}

// Known reports a type the PC Client profile defines.
func (t EventType) Known() bool { _, ok := eventNames[t]; return ok }

func (t EventType) String() string {
	if s, ok := eventNames[t]; ok {
		return s
	}
	return fmt.Sprintf("EV_UNKNOWN_0x%08x", uint32(t))
}

// Variable is a UEFI_VARIABLE_DATA: a variable as firmware or shim
// measured it.
type Variable struct {
	Name string   `json:"name"`
	GUID efi.GUID `json:"guid"`
	Data []byte   `json:"-"`
	Size int      `json:"size"`
}

// ImageLoad is a UEFI_IMAGE_LOAD_EVENT: a PE image loaded and measured.
type ImageLoad struct {
	Address    uint64 `json:"address"`
	Length     uint64 `json:"length"`
	DevicePath string `json:"devicePath,omitempty"`
	// File is the file path of the device path ("\EFI\debian\grubx64.efi"),
	// "" when it has none.
	File string `json:"file,omitempty"`
}

// parseVariable decodes UEFI_VARIABLE_DATA (TCG PC Client PFP 10.4.2):
// VariableName GUID, UnicodeNameLength (UINT64, characters),
// VariableDataLength (UINT64), the name (UTF-16LE, no NUL) and the data.
func parseVariable(b []byte) (*Variable, error) {
	if len(b) < 32 {
		return nil, fmt.Errorf("UEFI_VARIABLE_DATA of %d bytes is shorter than its 32-byte header", len(b))
	}
	le := binary.LittleEndian
	var g efi.GUID
	copy(g[:], b[:16])
	nameLen, dataLen := le.Uint64(b[16:]), le.Uint64(b[24:])
	rest := uint64(len(b) - 32)
	if nameLen > rest/2 || dataLen > rest-2*nameLen {
		return nil, fmt.Errorf("UEFI_VARIABLE_DATA name of %d characters and data of %d bytes run past the event's %d bytes", nameLen, dataLen, len(b))
	}
	name := utf16String(b[32 : 32+2*nameLen])
	data := b[32+2*nameLen : 32+2*nameLen+dataLen]
	return &Variable{Name: name, GUID: g, Data: data, Size: len(data)}, nil
}

// marshalVariable encodes v as UEFI_VARIABLE_DATA, the bytes firmware hashes.
func marshalVariable(name string, guid efi.GUID, data []byte) []byte {
	u := utf16.Encode([]rune(name))
	out := make([]byte, 32, 32+2*len(u)+len(data))
	copy(out, guid[:])
	binary.LittleEndian.PutUint64(out[16:], uint64(len(u)))
	binary.LittleEndian.PutUint64(out[24:], uint64(len(data)))
	for _, c := range u {
		out = binary.LittleEndian.AppendUint16(out, c)
	}
	return append(out, data...)
}

// parseImageLoad decodes UEFI_IMAGE_LOAD_EVENT (PFP 10.4.3): location,
// length and link-time address (UINT64 each), device path length (UINT64)
// and the device path.
func parseImageLoad(b []byte) (*ImageLoad, error) {
	if len(b) < 32 {
		return nil, fmt.Errorf("UEFI_IMAGE_LOAD_EVENT of %d bytes is shorter than its 32-byte header", len(b))
	}
	le := binary.LittleEndian
	il := &ImageLoad{Address: le.Uint64(b), Length: le.Uint64(b[8:])}
	n := le.Uint64(b[24:])
	if n > uint64(len(b)-32) {
		return nil, fmt.Errorf("device path of %d bytes runs past the event's %d bytes", n, len(b))
	}
	if n > 0 {
		dp, err := efi.ParseDevicePath(b[32 : 32+n])
		if err != nil {
			return il, fmt.Errorf("device path: %w", err)
		}
		il.DevicePath = dp.String()
		il.File = dp.FilePath()
	}
	return il, nil
}

func utf16String(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, binary.LittleEndian.Uint16(b[i:]))
	}
	return strings.TrimRight(string(utf16.Decode(u)), "\x00")
}

// printable is b as text when it is (UTF-8 without control characters but
// a final NUL), quoted otherwise shortened hex.
func printable(b []byte) string {
	t := bytes.TrimRight(b, "\x00")
	if utf8.Valid(t) && !bytes.ContainsFunc(t, func(r rune) bool { return r < 0x20 && r != '\t' && r != '\n' }) {
		return strings.ReplaceAll(string(t), "\n", `\n`)
	}
	if len(b) > 32 {
		return fmt.Sprintf("%x... (%d bytes)", b[:32], len(b))
	}
	return fmt.Sprintf("%x", b)
}

// decode fills Description, Variable and Image from the data.
func decode(e *Event) {
	switch e.Type {
	case evEFIVariableDriverConfig, evEFIVariableBoot, evEFIVariableBoot2, evEFIVariableAuthority:
		v, err := parseVariable(e.Data)
		if err != nil {
			e.Description = "undecodable: " + err.Error()
			return
		}
		e.Variable = v
		e.Description = fmt.Sprintf("%s-%s (%d bytes)", v.Name, v.GUID, v.Size)
		if e.Type == evEFIVariableAuthority {
			e.Description += ": " + describeAuthority(v)
		}
	case evEFIBootServicesApp, evEFIBootServicesDriver, evEFIRuntimeServicesDrv:
		il, err := parseImageLoad(e.Data)
		if il != nil {
			e.Image = il
			e.Description = fmt.Sprintf("image of %d bytes", il.Length)
			if il.DevicePath != "" {
				e.Description += " from " + il.DevicePath
			}
		}
		if err != nil {
			e.Description += " (undecodable: " + err.Error() + ")"
		}
	case evSeparator:
		switch {
		case bytes.Equal(e.Data, []byte{0, 0, 0, 0}):
			e.Description = "separator"
		case bytes.Equal(e.Data, []byte{0xff, 0xff, 0xff, 0xff}):
			e.Description = "separator: firmware error"
		default:
			e.Description = "separator " + printable(e.Data)
		}
	case evEventTag:
		// TCG_PCClientTaggedEvent: taggedEventID, taggedEventDataSize, data.
		if len(e.Data) >= 8 {
			id, n := binary.LittleEndian.Uint32(e.Data), binary.LittleEndian.Uint32(e.Data[4:])
			if uint64(n) <= uint64(len(e.Data)-8) {
				e.Description = fmt.Sprintf("tag 0x%08x: %s", id, printable(e.Data[8:8+n]))
				return
			}
		}
		e.Description = "malformed tagged event: " + printable(e.Data)
	case evSCRTMVersion:
		e.Description = "CRTM version " + strconv.Quote(utf16String(e.Data))
	case evEFIPlatformFirmwareBlob:
		if len(e.Data) == 16 {
			e.Description = fmt.Sprintf("firmware blob at 0x%x, %d bytes", binary.LittleEndian.Uint64(e.Data), binary.LittleEndian.Uint64(e.Data[8:]))
			return
		}
		e.Description = printable(e.Data)
	case evEFIGPTEvent, evEFIGPTEvent2:
		e.Description = fmt.Sprintf("GPT header and partition entries (%d bytes)", len(e.Data))
	case evEFIHandoffTables, evEFIHandoffTables2:
		e.Description = fmt.Sprintf("configuration tables (%d bytes)", len(e.Data))
	case evNoAction:
		e.Description = printable(e.Data)
	default:
		// EV_EFI_ACTION, EV_ACTION, EV_IPL (GRUB's "grub_cmd: ...",
		// "kernel_cmdline: ...", file paths; shim's MokList names),
		// EV_POST_CODE, EV_S_CRTM_CONTENTS...
		e.Description = printable(e.Data)
	}
}
