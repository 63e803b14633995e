/* defines: ebmc_run_check_ranks (that the data-parallel ranks still hold the same parameters).
 * Rank 0 alone writes checkpoints, so a parameter updated outside the averaged optimiser step
 * (ebmc_adam_step, or a recipe's own update that skips ebmc_ctx_grad_mean) would drift apart
 * across the ranks unseen. At every checkpoint each rank hashes the trainable tensors of every
 * network the recipe checkpoints and the items it marks `shared` (ebmc_ckpt_item), rank 0's
 * hashes are broadcast, and a difference ends the run with the names of what differs. BatchNorm
 * running statistics and other buffers are per-rank by design and are not compared. */
#include "train/shell.h"
#include "ebmc/comm.h"
#include "ebmc/nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t h[EBMC_MAX_CKPT_ITEMS];
    const char *name[EBMC_MAX_CKPT_ITEMS];
    int n;
    void *buf; /* host staging */
    size_t cap;
} rank_hashes;

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

static ebmc_status hash_bytes(ebmc_ctx_t *ctx, rank_hashes *H, const void *p, size_t bytes, bool device,
                              uint64_t *h) {
    if (device) {
        if (bytes > H->cap) {
            free(H->buf);
            H->buf = ebmc_xmalloc(bytes, "rank check");
            H->cap = bytes;
        }
        EBMC_TRY(ebmc_copy(ctx, H->buf, p, bytes, EBMC_COPY_D2H));
        p = H->buf;
    }
    *h = fnv1a(*h, p, bytes);
    return EBMC_OK;
}

static ebmc_status hash_net(ebmc_ctx_t *ctx, rank_hashes *H, ebmc_net_t *net, uint64_t *h) {
    for (int i = 0; i < ebmc_net_tensor_count(net); i++) {
        const ebmc_net_tensor *t = ebmc_net_tensor_at(net, i);
        if (t->trainable && t->data) EBMC_TRY(hash_bytes(ctx, H, t->data, t->count * sizeof(float), true, h));
    }
    return EBMC_OK;
}

/* this rank's hash of each compared item */
static ebmc_status hash_items(ebmc_run_t *r, rank_hashes *H) {
    ebmc_ckpt_item it[EBMC_MAX_CKPT_ITEMS];
    int n = r->recipe->ckpt_items(r->state, it, EBMC_MAX_CKPT_ITEMS);
    static const size_t esz[] = {[EBMC_ITEM_F32] = 4, [EBMC_ITEM_F64] = 8, [EBMC_ITEM_U8] = 1};
    H->n = 0;
    for (int i = 0; i < n; i++) {
        bool bytes = it[i].shared && (it[i].kind == EBMC_ITEM_F32 || it[i].kind == EBMC_ITEM_F64 ||
                                      it[i].kind == EBMC_ITEM_U8);
        if (it[i].kind != EBMC_ITEM_NET && !bytes) continue;
        uint64_t h = 0xCBF29CE484222325ull;
        if (it[i].kind == EBMC_ITEM_NET) EBMC_TRY(hash_net(r->ctx, H, it[i].ptr, &h));
        else EBMC_TRY(hash_bytes(r->ctx, H, it[i].ptr, it[i].count * esz[it[i].kind], it[i].device, &h));
        H->name[H->n] = it[i].name;
        H->h[H->n++] = h;
    }
    return EBMC_OK;
}

ebmc_status ebmc_run_check_ranks(ebmc_run_t *r, int64_t iteration, char *err, size_t errlen) {
    if (r->ranks < 2) return EBMC_OK;
    rank_hashes H = {.n = 0};
    ebmc_status s = hash_items(r, &H);
    free(H.buf);
    if (s) {
        snprintf(err, errlen, "comparing the ranks' parameters: %s", ebmc_ctx_error(r->ctx));
        return s;
    }
    uint64_t root[EBMC_MAX_CKPT_ITEMS];
    memcpy(root, H.h, sizeof root);
    EBMC_TRY(ebmc_comm_bcast(r->comm, root, sizeof root, "comparing the ranks' parameters"));
    int first = -1;
    for (int i = 0; i < H.n && first < 0; i++)
        if (root[i] != H.h[i]) first = i;
    double differ = first >= 0;
    EBMC_TRY(ebmc_comm_sum_f64(r->comm, &differ, 1, "comparing the ranks' parameters"));
    if (differ == 0) return EBMC_OK;
    if (first >= 0)
        snprintf(err, errlen, "after iteration %" PRId64 " this rank's %s differs from rank 0's: a parameter was "
                 "set or updated apart on the ranks (e.g. a step that skips ebmc_ctx_grad_mean)", iteration, H.name[first]);
    else
        snprintf(err, errlen, "after iteration %" PRId64 " %g other rank(s) hold parameters that differ from rank 0's "
                 "(see their messages)", iteration, differ);
    return EBMC_E_INVALID;
}
