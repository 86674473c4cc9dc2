from pai_kb.cli import main

main()
