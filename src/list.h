/* list.h: intrusive circular doubly linked list; a connection's state is the list it sits on. */
#ifndef TIDEPOOL_LIST_H
#define TIDEPOOL_LIST_H

#include <stddef.h>

typedef struct List {
	struct List *next;
	struct List *prev;
} List;

#define LIST_CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void list_init(List *l)
{
	l->next = l;
	l->prev = l;
}

static inline int list_empty(const List *l)
{
	return l->next == l;
}

/* Append at the tail. */
static inline void list_append(List *head, List *item)
{
	item->prev = head->prev;
	item->next = head;
	head->prev->next = item;
	head->prev = item;
}

/* Insert at the head (LIFO reuse of idle servers). */
static inline void list_prepend(List *head, List *item)
{
	item->next = head->next;
	item->prev = head;
	head->next->prev = item;
	head->next = item;
}

static inline void list_del(List *item)
{
	item->prev->next = item->next;
	item->next->prev = item->prev;
	item->next = item;
	item->prev = item;
}

static inline List *list_first(const List *head)
{
	return list_empty(head) ? NULL : head->next;
}

static inline int list_count(const List *head)
{
	int n = 0;
	for (const List *i = head->next; i != head; i = i->next)
		n++;
	return n;
}

#define LIST_FOREACH(item, head) for ((item) = (head)->next; (item) != (head); (item) = (item)->next)
#define LIST_FOREACH_SAFE(item, tmp, head)                                                                   \
	for ((item) = (head)->next, (tmp) = (item)->next; (item) != (head);                                  \
	     (item) = (tmp), (tmp) = (item)->next)

#endif
