// sbm snapshot create|list|delete|revert <bundle> [name]: copy-on-write snapshots kept in
// <bundle>/.sbm/snapshots/<name>.sparsebundle (complete bundles; bands are hard links). Works on
// a bundle `sbm mount` serves, through its control channel.

import type { CommandModule } from 'yargs';
import { openBundleOperations } from '../../lib/control/open-bundle-operations.js';
import { SbmError } from '../../lib/errors.js';
import { formatSize } from '../../lib/size.js';
import type { SbmWarning } from '../../lib/warnings.js';
import { type GlobalOptions, action, jsonOption, printJson, printLine, strictOption, warningSink } from '../command-kit.js';
import { progressReporter } from '../progress.js';
import { counted } from '../plural.js';
import { passwordSource } from '../password-input.js';

type SnapshotAction = 'create' | 'list' | 'delete' | 'revert';

interface SnapshotArgs extends GlobalOptions {
  action: SnapshotAction;
  bundle: string;
  name?: string;
}

export const snapshotCommand: CommandModule<object, SnapshotArgs> = {
  command: 'snapshot <action> <bundle> [name]',
  describe: 'create, list, delete or revert to copy-on-write snapshots',
  builder: (yargs) =>
    yargs
      .positional('action', { choices: ['create', 'list', 'delete', 'revert'] as const, demandOption: true, describe: 'what to do' })
      .positional('bundle', { type: 'string', demandOption: true, describe: 'a sparse bundle' })
      .positional('name', { type: 'string', describe: 'snapshot name (create: default is the UTC time)' })
      .options({ ...jsonOption, ...strictOption }),
  handler: action(async (argv) => {
    const warnings: SbmWarning[] = [];
    const readOnly = argv.action === 'list';
    const bundle = await openBundleOperations(argv.bundle, {
      readOnly,
      onWarning: warningSink(argv, warnings),
      password: passwordSource(argv),
      strictWarnings: argv.strict === true,
    });
    try {
      if (argv.action === 'list') {
        const list = await bundle.snapshotList();
        if (argv.json) printJson({ input: argv.bundle, snapshots: list, warnings });
        else for (const item of list) printLine(`${item.name}\t${item.createdAt}\t${formatSize(item.uniqueBytes)} unique\t${item.token}`);
        return;
      }
      const name = argv.name ?? (argv.action === 'create' ? new Date().toISOString().replace(/[:.]/g, '-') : undefined);
      if (name === undefined) throw new SbmError('SBM_USAGE', `sbm snapshot ${argv.action} needs a snapshot name`);
      if (argv.action === 'create') {
        const info = await bundle.snapshotCreate(name);
        if (argv.json) printJson({ input: argv.bundle, ...info, warnings });
        else printLine(`${info.path}\n${info.token}`);
      } else if (argv.action === 'delete') {
        await bundle.snapshotDelete(name);
        if (argv.json) printJson({ input: argv.bundle, deleted: name, warnings });
      } else {
        const progress = progressReporter('reverting', !argv.json, { unit: 'bands', showRate: false });
        const result = await bundle
          .snapshotRevert(
            name,
            progress.onProgress && (({ bandsDone, bandsTotal }) => progress.onProgress?.({ bytesDone: bandsDone, bytesTotal: bandsTotal })),
          )
          .finally(() => progress.stop());
        if (argv.json) printJson({ input: argv.bundle, reverted: name, ...result, warnings });
        else printLine(`reverted to ${name}: ${counted(result.bandsChanged, 'band')} replaced`);
      }
    } finally {
      await bundle.close();
    }
  }),
};
