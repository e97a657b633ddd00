from dialbot.cli import main

main()
