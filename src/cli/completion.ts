// Shell completion scripts for `k8s completion <shell>`, generated from the registered commands and
// their flags, self-contained (nothing to cache or install besides the script itself).

export interface CompletionFlag {
  name: string;
  description: string;
}

export interface CompletionCommand {
  id: string;
  description: string;
  flags: CompletionFlag[];
}

export const SHELLS = ['bash', 'zsh', 'fish', 'powershell'] as const;
export type Shell = (typeof SHELLS)[number];

/** The first sentence of a description, on one line, without the quotes a shell would trip on. */
function summary(text: string): string {
  return (text.split(/(?<=\.)\s|\n/)[0] ?? '').replace(/["'`$\\[\]:]/g, '').trim();
}

function bash(bin: string, commands: CompletionCommand[]): string {
  const cases = commands.map((c) => `    ${c.id}) words="${c.flags.map((f) => `--${f.name}`).join(' ')}" ;;`);
  return [
    `# bash completion for ${bin}: source it, or save it as /etc/bash_completion.d/${bin}`,
    `_${bin}_complete() {`,
    '  local cur="${COMP_WORDS[COMP_CWORD]}" words',
    '  if [ "$COMP_CWORD" -eq 1 ]; then',
    `    COMPREPLY=($(compgen -W "${commands.map((c) => c.id).join(' ')}" -- "$cur"))`,
    '    return',
    '  fi',
    '  case "${COMP_WORDS[1]}" in',
    ...cases,
    '    *) words="" ;;',
    '  esac',
    '  COMPREPLY=($(compgen -W "$words --help" -- "$cur"))',
    '}',
    `complete -o default -F _${bin}_complete ${bin}`,
    '',
  ].join('\n');
}

function zsh(bin: string, commands: CompletionCommand[]): string {
  const cases = commands.map((c) => `    ${c.id}) _arguments ${[...c.flags.map((f) => `'--${f.name}[${summary(f.description)}]'`), "'*:file:_files'"].join(' ')} ;;`);
  return [
    `#compdef ${bin}`,
    `# zsh completion for ${bin}: save it as _${bin} in a directory of $fpath`,
    `_${bin}() {`,
    '  local -a commands',
    `  commands=(${commands.map((c) => `'${c.id}:${summary(c.description)}'`).join(' ')})`,
    '  if (( CURRENT == 2 )); then',
    "    _describe 'command' commands",
    '    return',
    '  fi',
    '  case $words[2] in',
    ...cases,
    '  esac',
    '}',
    `compdef _${bin} ${bin}`,
    '',
  ].join('\n');
}

function fish(bin: string, commands: CompletionCommand[]): string {
  return [
    `# fish completion for ${bin}: save it as ~/.config/fish/completions/${bin}.fish`,
    `complete -c ${bin} -f`,
    ...commands.map((c) => `complete -c ${bin} -n __fish_use_subcommand -a ${c.id} -d '${summary(c.description)}'`),
    ...commands.flatMap((c) => c.flags.map((f) => `complete -c ${bin} -n '__fish_seen_subcommand_from ${c.id}' -l ${f.name} -d '${summary(f.description)}'`)),
    '',
  ].join('\n');
}

function powershell(bin: string, commands: CompletionCommand[]): string {
  const table = commands.map((c) => `    '${c.id}' = @(${c.flags.map((f) => `'--${f.name}'`).join(', ')})`);
  return [
    `# PowerShell completion for ${bin}: add it to your $PROFILE`,
    `Register-ArgumentCompleter -Native -CommandName ${bin} -ScriptBlock {`,
    '  param($wordToComplete, $commandAst, $cursorPosition)',
    '  $flags = @{',
    ...table,
    '  }',
    '  $words = $commandAst.CommandElements | ForEach-Object { $_.ToString() }',
    '  $candidates = if ($words.Count -le 2 -and -not $wordToComplete.StartsWith(\'-\')) { $flags.Keys } else { $flags[$words[1]] + \'--help\' }',
    '  $candidates | Where-Object { $_ -like "$wordToComplete*" } | Sort-Object | ForEach-Object {',
    "    [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)",
    '  }',
    '}',
    '',
  ].join('\n');
}

const GENERATORS: Record<Shell, (bin: string, commands: CompletionCommand[]) => string> = { bash, zsh, fish, powershell };

export function completionScript(shell: Shell, bin: string, commands: CompletionCommand[]): string {
  const sorted = [...commands].sort((a, b) => a.id.localeCompare(b.id));
  return GENERATORS[shell](bin, sorted);
}
