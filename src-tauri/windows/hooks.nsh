; Ferry's NSIS installer hooks (tauri.conf.json: bundle.windows.nsis.installerHooks).
; The installer closes ferry-app.exe itself; Ferry's own process, ferry-tray.exe (the
; engine and the tray), is stopped here before files are replaced or removed, so that an
; update or an uninstall never meets it holding its binary open. Its forwards stop with it;
; the updater starts Ferry again after installing.

!macro NSIS_HOOK_PREINSTALL
  nsExec::Exec 'taskkill /F /IM ferry-tray.exe'
  Pop $0
!macroend

!macro NSIS_HOOK_PREUNINSTALL
  nsExec::Exec 'taskkill /F /IM ferry-tray.exe'
  Pop $0
!macroend
