/*
 * upload.h - the files step of a sync round: scan the watched folder,
 * ask the server which hashes it lacks, upload only those.
 */
#ifndef CLIENTS_SYNCD_UPLOAD_H
#define CLIENTS_SYNCD_UPLOAD_H

#include "clients/syncd/sync.h"

/* Scans the folder (files.h), when one is configured: new and changed
 * files hashed and recorded, online or not. */
void upload_scan(sync_ctx *x);

/* Uploads what the server lacks of the recorded files. 0 when done or no
 * folder is configured; -1 when the network or the server failed (the
 * round backs off and retries). */
int upload_round(sync_ctx *x);

#endif
