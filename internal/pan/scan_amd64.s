//go:build amd64 && !purego

#include "textflag.h"

// func interestMasksAVX2(p *byte, n int) (off int, mask uint64)
//
// Scans 64-byte blocks p[off:off+64] for off = 0, 64, ... < n (n is a
// multiple of 64) and stops at the first block holding a byte that can
// start a digit in some encoding: an ASCII digit, '%', '\\', '&' or a UTF-8
// lead byte (0xC0-0xFF). mask has bit k set iff p[off+k] is one. If no
// block qualifies, off == n and mask == 0.
//
// Digits: x+0x50 lands in 0x80..0x89 (signed -128..-119) exactly for
// '0'..'9'. Lead bytes: x > -65 (signed) and x < 0, read off the sign bit
// of x AND (x > -65).
TEXT ·interestMasksAVX2(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), DX
	XORQ DI, DI
	MOVQ $0x5050505050505050, AX
	VMOVQ AX, X0
	VPBROADCASTQ X0, Y0
	MOVQ $0x8a8a8a8a8a8a8a8a, AX
	VMOVQ AX, X1
	VPBROADCASTQ X1, Y1
	MOVQ $0x2525252525252525, AX
	VMOVQ AX, X4
	VPBROADCASTQ X4, Y4
	MOVQ $0x5c5c5c5c5c5c5c5c, AX
	VMOVQ AX, X5
	VPBROADCASTQ X5, Y5
	MOVQ $0x2626262626262626, AX
	VMOVQ AX, X6
	VPBROADCASTQ X6, Y6
	MOVQ $0xbfbfbfbfbfbfbfbf, AX
	VMOVQ AX, X7
	VPBROADCASTQ X7, Y7

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
	// '%', '\\', '&'
	VPCMPEQB Y4, Y2, Y8
	VPOR     Y8, Y3, Y3
	VPCMPEQB Y4, Y9, Y11
	VPOR     Y11, Y10, Y10
	VPCMPEQB Y5, Y2, Y8
	VPOR     Y8, Y3, Y3
	VPCMPEQB Y5, Y9, Y11
	VPOR     Y11, Y10, Y10
	VPCMPEQB Y6, Y2, Y8
	VPOR     Y8, Y3, Y3
	VPCMPEQB Y6, Y9, Y11
	VPOR     Y11, Y10, Y10
	// lead bytes: sign(x) & (x > 0xbf signed)
	VPCMPGTB Y7, Y2, Y8
	VPAND    Y2, Y8, Y8
	VPOR     Y8, Y3, Y3
	VPCMPGTB Y7, Y9, Y11
	VPAND    Y9, Y11, Y11
	VPOR     Y11, Y10, Y10
	VPMOVMSKB Y3, AX
	VPMOVMSKB Y10, CX
	SHLQ $32, CX
	ORQ  CX, AX
	TESTQ AX, AX
	JNZ  found
	ADDQ $64, DI
	JMP  loop

found:
	VZEROUPPER
	MOVQ DI, off+16(FP)
	MOVQ AX, mask+24(FP)
	RET

none:
	VZEROUPPER
	MOVQ DI, off+16(FP)
	MOVQ $0, mask+24(FP)
	RET
