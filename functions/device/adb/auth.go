package adb

import (
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// authTokenSize is the size of the random token a device asks the host to
// sign.
const authTokenSize = 20

// androidKeyWords is the modulus size, in 32-bit words, of the only key
// size adbd accepts (RSA 2048).
const androidKeyWords = 64

// androidKeySize is the size of an encoded Android RSA public key: word
// count, n0inv, modulus, R² mod n (both little-endian) and the exponent.
const androidKeySize = 4 + 4 + 4*androidKeyWords + 4*androidKeyWords + 4

// signToken signs an AUTH token as adb does: RSA PKCS #1 v1.5 with the
// token standing in for a SHA-1 digest.
func signToken(key *rsa.PrivateKey, token []byte) ([]byte, error) {
	if len(token) != authTokenSize {
		return nil, fmt.Errorf("adb: AUTH token of %d bytes", len(token))
	}
	return rsa.SignPKCS1v15(nil, key, crypto.SHA1, token)
}

// verifyToken checks a host's signature of token against pub.
func verifyToken(pub *rsa.PublicKey, token, sig []byte) bool {
	return rsa.VerifyPKCS1v15(pub, crypto.SHA1, token, sig) == nil
}

// EncodePublicKey encodes pub in adb's text form, as in adbkey.pub and a
// device's /data/misc/adb/adb_keys: the base64 of Android's RSA public key
// structure, a space and name. Only 2048-bit keys are accepted by devices.
func EncodePublicKey(pub *rsa.PublicKey, name string) (string, error) {
	if pub.N.BitLen() != 32*androidKeyWords {
		return "", fmt.Errorf("adb: a %d-bit key; devices take 2048-bit RSA keys", pub.N.BitLen())
	}
	b := make([]byte, androidKeySize)
	binary.LittleEndian.PutUint32(b[0:], androidKeyWords)
	// n0inv = -1 / n mod 2^32
	r32 := new(big.Int).Lsh(big.NewInt(1), 32)
	n0 := new(big.Int).Mod(pub.N, r32)
	inv := new(big.Int).ModInverse(n0, r32)
	n0inv := new(big.Int).Sub(r32, inv)
	binary.LittleEndian.PutUint32(b[4:], uint32(n0inv.Uint64()))
	putLE(b[8:8+4*androidKeyWords], pub.N)
	// rr = (2^2048)^2 mod n
	rr := new(big.Int).Lsh(big.NewInt(1), 2*32*androidKeyWords)
	rr.Mod(rr, pub.N)
	putLE(b[8+4*androidKeyWords:8+8*androidKeyWords], rr)
	binary.LittleEndian.PutUint32(b[8+8*androidKeyWords:], uint32(pub.E))
	return base64.StdEncoding.EncodeToString(b) + " " + name, nil
}

// ParsePublicKey reads a key in adb's text form ("BASE64 name", a line of
// adbkey.pub or adb_keys; the name is optional).
func ParsePublicKey(s string) (*rsa.PublicKey, error) {
	field, _, _ := strings.Cut(strings.TrimSpace(strings.TrimRight(s, "\x00")), " ")
	b, err := base64.StdEncoding.DecodeString(field)
	if err != nil {
		return nil, fmt.Errorf("adb: public key: %w", err)
	}
	if len(b) != androidKeySize || binary.LittleEndian.Uint32(b) != androidKeyWords {
		return nil, errors.New("adb: public key: not a 2048-bit Android RSA key")
	}
	n := getLE(b[8 : 8+4*androidKeyWords])
	e := binary.LittleEndian.Uint32(b[8+8*androidKeyWords:])
	if n.Sign() == 0 || e < 3 || e > 1<<31-1 {
		return nil, errors.New("adb: public key: bad modulus or exponent")
	}
	return &rsa.PublicKey{N: n, E: int(e)}, nil
}

// putLE writes x little-endian into b (len(b) bytes).
func putLE(b []byte, x *big.Int) {
	be := x.FillBytes(make([]byte, len(b)))
	for i := range be {
		b[i] = be[len(be)-1-i]
	}
}

func getLE(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i := range b {
		be[i] = b[len(b)-1-i]
	}
	return new(big.Int).SetBytes(be)
}
