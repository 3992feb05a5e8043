/* The DPDK API vswitch uses. bindgen reads this file; the static inline functions it reaches
 * get generated C wrappers (see build.rs). */
#include <rte_config.h>
#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* rte_errno is a per-lcore (thread-local) variable behind a macro. */
static inline int vs_errno(void) { return rte_errno; }

/* Per-burst accessors, so that Rust never depends on the layout of struct rte_mbuf (a packed
 * union-heavy struct whose layout bindgen would have to reproduce exactly). */

/* For each of the n mbufs: its first byte and its length, or length 0 when the frame spans
 * more than one segment (the switch takes single-buffer frames only). */
static inline void vs_mbuf_views(struct rte_mbuf **m, uint16_t n, const uint8_t **data,
                                 uint16_t *len)
{
    for (uint16_t i = 0; i < n; i++) {
        data[i] = rte_pktmbuf_mtod(m[i], const uint8_t *);
        len[i] = m[i]->nb_segs == 1 ? m[i]->data_len : 0;
    }
}

/* Makes each of the n fresh mbufs len[i] bytes long and returns where to write them; NULL
 * where the mbuf has no room for that many. */
static inline void vs_mbuf_fill(struct rte_mbuf **m, uint16_t n, const uint16_t *len,
                                uint8_t **data)
{
    for (uint16_t i = 0; i < n; i++)
        data[i] = (uint8_t *)rte_pktmbuf_append(m[i], len[i]);
}

/* The flow types to spread by RSS (the macros use RTE_BIT64, which bindgen cannot evaluate). */
static inline uint64_t vs_rss_ip_tcp_udp(void)
{
    return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
}
