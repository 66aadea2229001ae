//go:build amd64 && !purego

#include "textflag.h"

// Separator classes by nibble: bit 0 for 0x09 0x0a 0x0d, bit 1 for
// 0x20 0x2b 0x2d 0x2e 0x2f, bit 2 for 0x3a, bit 3 for 0x5f.
DATA sepLo<>+0(SB)/8, $0x0000000000000002
DATA sepLo<>+8(SB)/8, $0x0a02030002050100
GLOBL sepLo<>(SB), RODATA|NOPTR, $16
DATA sepHi<>+0(SB)/8, $0x0000080004020001
DATA sepHi<>+8(SB)/8, $0x0000000000000000
GLOBL sepHi<>(SB), RODATA|NOPTR, $16

#define BCAST(imm, x, y) MOVQ imm, R10; VMOVQ R10, x; VPBROADCASTQ x, y

// func blockMasksAVX2(p *byte, n int) (off int, d, s, i uint64)
//
// Scans 64-byte blocks p[off:off+64] for off = 0, 64, ... < n (n is a
// multiple of 64) and stops at the first block holding an ASCII digit or a
// byte that can start an encoded digit ('%', '\\', '&', UTF-8 lead bytes
// 0xC0-0xFF). It returns that block's masks: d (ASCII digits), s (the ASCII
// separators " \t\r\n-.:/_+") and i (the escape and lead bytes); bit k is byte off+k. If no block
// qualifies, off == n and the masks are 0.
//
// Digits: x+0x50 lands in 0x80..0x89 (signed -128..-119) exactly for
// '0'..'9'. Lead bytes: the sign bit of x AND (x > -65 signed).
// Constants are moved with VMOVQ (VEX): a legacy-SSE MOVQ after a 256-bit
// instruction stalls on the AVX/SSE state transition.
TEXT ·blockMasksAVX2(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), DX
	XORQ DI, DI
	BCAST($0x5050505050505050, X0, Y0)
	BCAST($0x8a8a8a8a8a8a8a8a, X1, Y1)
	BCAST($0x2525252525252525, X4, Y4)
	BCAST($0x5c5c5c5c5c5c5c5c, X5, Y5)
	BCAST($0x2626262626262626, X6, Y6)
	BCAST($0xbfbfbfbfbfbfbfbf, X7, Y7)

loop:
	CMPQ DI, DX
	JAE  none
	VMOVDQU (SI)(DI*1), Y2
	VMOVDQU 32(SI)(DI*1), Y9
	// digits
	VPADDB   Y0, Y2, Y3
	VPADDB   Y0, Y9, Y10
	VPCMPGTB Y3, Y1, Y3
	VPCMPGTB Y10, Y1, Y10
	VPMOVMSKB Y3, AX
	VPMOVMSKB Y10, CX
	SHLQ $32, CX
	ORQ  CX, AX
	// '%', '\\', '&', lead bytes
	VPCMPEQB Y4, Y2, Y8
	VPCMPEQB Y5, Y2, Y3
	VPOR     Y3, Y8, Y8
	VPCMPEQB Y6, Y2, Y3
	VPOR     Y3, Y8, Y8
	VPCMPGTB Y7, Y2, Y3
	VPAND    Y2, Y3, Y3
	VPOR     Y3, Y8, Y8
	VPCMPEQB Y4, Y9, Y11
	VPCMPEQB Y5, Y9, Y3
	VPOR     Y3, Y11, Y11
	VPCMPEQB Y6, Y9, Y3
	VPOR     Y3, Y11, Y11
	VPCMPGTB Y7, Y9, Y3
	VPAND    Y9, Y3, Y3
	VPOR     Y3, Y11, Y11
	VPMOVMSKB Y8, BX
	VPMOVMSKB Y11, CX
	SHLQ $32, CX
	ORQ  CX, BX
	MOVQ AX, CX
	ORQ  BX, CX
	JNZ  found
	ADDQ $64, DI
	JMP  loop

found:
	// Separators by nibble lookup: byte x is one iff
	// sepLo[x&15] & sepHi[x>>4] != 0.
	VBROADCASTI128 sepLo<>(SB), Y12
	VBROADCASTI128 sepHi<>(SB), Y13
	BCAST($0x0f0f0f0f0f0f0f0f, X14, Y14)
	VPXOR    Y15, Y15, Y15
	VPAND    Y14, Y2, Y3
	VPSRLW   $4, Y2, Y8
	VPAND    Y14, Y8, Y8
	VPSHUFB  Y3, Y12, Y3
	VPSHUFB  Y8, Y13, Y8
	VPAND    Y8, Y3, Y3
	VPCMPEQB Y15, Y3, Y3
	VPAND    Y14, Y9, Y10
	VPSRLW   $4, Y9, Y8
	VPAND    Y14, Y8, Y8
	VPSHUFB  Y10, Y12, Y10
	VPSHUFB  Y8, Y13, Y8
	VPAND    Y8, Y10, Y10
	VPCMPEQB Y15, Y10, Y10
	VPMOVMSKB Y3, CX
	VPMOVMSKB Y10, R8
	SHLQ $32, R8
	ORQ  R8, CX
	NOTQ CX
	VZEROUPPER
	MOVQ DI, off+16(FP)
	MOVQ AX, d+24(FP)
	MOVQ CX, s+32(FP)
	MOVQ BX, i+40(FP)
	RET

none:
	VZEROUPPER
	MOVQ DI, off+16(FP)
	MOVQ $0, d+24(FP)
	MOVQ $0, s+32(FP)
	MOVQ $0, i+40(FP)
	RET
