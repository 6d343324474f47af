package efi

import "bytes"

// AppendSignatureLists is the data a signature database (db, dbx, dbt, KEK)
// holds after an EFI_VARIABLE_APPEND_WRITE of add to old, without a store:
// old followed by add less the entries old already has (edk2's
// FilterSignatureList, as VarStore.AppendWrite applies it). Both must be
// well-formed signature lists. measure predicts the db and dbx firmware will
// measure from it.
func AppendSignatureLists(old, add []byte) ([]byte, error) {
	if _, err := ParseSignatureLists(add); err != nil {
		return nil, err
	}
	f, err := filterSignatureList(old, add)
	if err != nil {
		return nil, err
	}
	return append(bytes.Clone(old), f...), nil
}
