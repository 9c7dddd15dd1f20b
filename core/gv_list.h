/* core/gv_list.h - intrusive doubly linked lists: any struct with prev and next pointers */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_LIST_H
#define GV_LIST_H

/* Macros because the lists are of different structs (connections, calls, transfers), each
 * linked through its own `prev` and `next` members; head is the list's first-node pointer.
 * Both arguments are evaluated more than once: pass plain lvalues. Not thread-safe: the
 * owner's thread or lock guards the list. */

/* Puts node first in the list at head. */
#define GV_DLIST_PUSH(head, node)                                                                  \
    do {                                                                                           \
        (node)->prev = NULL;                                                                       \
        (node)->next = (head);                                                                     \
        if (head) {                                                                                \
            (head)->prev = (node);                                                                 \
        }                                                                                          \
        (head) = (node);                                                                           \
    } while (0)

/* Takes node out of the list at head and clears its links; a node in no list (both links
 * NULL and not the head) is left as it is. */
#define GV_DLIST_UNLINK(head, node)                                                                \
    do {                                                                                           \
        if ((node)->prev) {                                                                        \
            (node)->prev->next = (node)->next;                                                     \
        }                                                                                          \
        else if ((head) == (node)) {                                                               \
            (head) = (node)->next;                                                                 \
        }                                                                                          \
        if ((node)->next) {                                                                        \
            (node)->next->prev = (node)->prev;                                                     \
        }                                                                                          \
        (node)->prev = NULL;                                                                       \
        (node)->next = NULL;                                                                       \
    } while (0)

#endif
