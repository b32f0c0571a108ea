/* ilist: an intrusive, circular, doubly linked list (as the Linux kernel's
 * and libuv's queue.h). An element embeds an il_node; the list head is an
 * il_node too, linked to itself when empty, so insertion and removal need
 * no branches and no allocation. IL_ENTRY gets the element back from its
 * node. A node not in any list should be il_init'ed, so il_unlink on it is
 * harmless and il_linked tells. */
#ifndef ADSYNC_ILIST_H
#define ADSYNC_ILIST_H

#include <stddef.h>

typedef struct il_node {
    struct il_node *prev, *next;
} il_node;

#define IL_ENTRY(node, type, member) ((type *)(void *)((char *)(node) - offsetof(type, member)))

static inline void il_init(il_node *n)
{
    n->prev = n->next = n;
}

static inline int il_empty(const il_node *head)
{
    return head->next == head;
}

/* For an element's node: 1 while it is in a list (il_init'ed nodes only). */
static inline int il_linked(const il_node *n)
{
    return n->next != n;
}

static inline void il_insert_before(il_node *at, il_node *n)
{
    n->next = at;
    n->prev = at->prev;
    at->prev->next = n;
    at->prev = n;
}

static inline void il_push_back(il_node *head, il_node *n)
{
    il_insert_before(head, n);
}

static inline void il_push_front(il_node *head, il_node *n)
{
    il_insert_before(head->next, n);
}

static inline void il_unlink(il_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    il_init(n);
}

/* The first node, or NULL when the list is empty. */
static inline il_node *il_first(const il_node *head)
{
    return il_empty(head) ? NULL : head->next;
}

/* Walks a list whose current node may be unlinked in the body. */
#define IL_FOREACH_SAFE(n, tmp, head) \
    for ((n) = (head)->next, (tmp) = (n)->next; (n) != (head); (n) = (tmp), (tmp) = (n)->next)

#endif
