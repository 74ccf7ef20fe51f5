/* gemm_undef.h -- forget one instantiation's vector vocabulary (see gemm_tile.h). */
#undef T
#undef V
#undef VL
#undef MR
#undef GEMM_ARGS
#undef GEMM_NAME
#undef MASK_T
#undef V_ZERO
#undef V_LOAD
#undef V_STORE
#undef V_BCAST
#undef V_SET1
#undef V_FMA
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_MAX
#undef V_GT0_SELECT
#undef M_MAKE
#undef V_MLOAD
#undef V_MSTORE

