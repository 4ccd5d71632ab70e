"""BN254 (alt_bn128) BLS keys as Aztec uses them: G1 public keys, compressed to 32 bytes.

Compression: the affine x coordinate big-endian, with the top bit set when y is odd
(Aztec `foundation/crypto/bn254`, `compressG1Point`). The field modulus is < 2^254, so the top bit is free.
"""

from __future__ import annotations

from py_ecc.optimized_bn128.optimized_curve import G1, multiply, normalize
from py_ecc.optimized_bn128.optimized_curve import curve_order as BN254_R
from py_ecc.optimized_bn128.optimized_curve import field_modulus as BN254_P

__all__ = ["BN254_P", "BN254_R", "bls_public_key", "decompress_g1", "is_valid_bls_secret"]

_Y_ODD_FLAG = 0x80


def is_valid_bls_secret(sk: int) -> bool:
    """True for a scalar in [1, r-1]."""
    return 0 < sk < BN254_R


def bls_public_key(sk: int) -> bytes:
    """The 32-byte compressed BN254 G1 public key `sk·G1` (sk reduced mod r, as Aztec does)."""
    scalar = sk % BN254_R
    if scalar == 0:
        raise ValueError("a BLS secret key must not be 0 mod r")
    x, y = normalize(multiply(G1, scalar))
    out = bytearray(x.n.to_bytes(32, "big"))
    if y.n & 1:
        out[0] |= _Y_ODD_FLAG
    return bytes(out)


def decompress_g1(compressed: bytes) -> tuple[int, int]:
    """The affine point of a compressed G1 key; raises ValueError when it is not on the curve."""
    if len(compressed) != 32:
        raise ValueError(f"a compressed BN254 G1 point is 32 bytes, got {len(compressed)}")
    y_odd = bool(compressed[0] & _Y_ODD_FLAG)
    x = int.from_bytes(bytes([compressed[0] & 0x7F]) + compressed[1:], "big")
    if x >= BN254_P:
        raise ValueError("x coordinate is not below the field modulus")
    rhs = (pow(x, 3, BN254_P) + 3) % BN254_P
    y = pow(rhs, (BN254_P + 1) // 4, BN254_P)  # p ≡ 3 (mod 4)
    if (y * y) % BN254_P != rhs:
        raise ValueError("x is not the coordinate of a point on BN254 G1")
    if (y & 1) != y_odd:
        y = BN254_P - y
    return x, y
